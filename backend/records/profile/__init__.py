"""The medical profile: entries, measures, advance directives, organ donation, and what documents tell of it."""
