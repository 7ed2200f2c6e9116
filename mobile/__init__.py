"""Carnet's mobile app (Kivy). ``mobile.api`` is the Kivy-free part: client and input rules."""
