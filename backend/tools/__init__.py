"""The tools, above the features: the ``carnet`` command (``cli``), backup and restore, the benchmark seeder,
the demo data, and production's start-up checks. The app factory assembles them; no feature or core module
imports them."""
