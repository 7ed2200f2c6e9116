"""``python -m mobile``: run the Carnet app (see ``mobile.main.main`` for its settings).

Kivy's window settings (phone size on a desktop, no multisampling) are applied by ``mobile.main``
itself, before it imports anything that opens the window (``mobile.startup.configure_kivy``).
"""

from mobile.main import main

main()
