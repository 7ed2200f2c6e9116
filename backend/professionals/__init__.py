"""Health professionals and how they authenticate to the professional API."""
