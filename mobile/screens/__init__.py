"""One module and one ``.kv`` per screen, registered in ``mobile.main.SCREENS``.

Screens call ``mobile.api.CarnetClient`` through ``CarnetScreen.call`` (off the UI thread);
they never speak HTTP or build JSON themselves.
"""
