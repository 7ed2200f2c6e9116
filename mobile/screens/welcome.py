"""First screen: activate a profile for the first time, or sign in."""

from __future__ import annotations

from .base import CarnetScreen


class WelcomeScreen(CarnetScreen):
    def start_activation(self) -> None:
        self.app.notice = ""
        self.app.show("activation").start()

    def start_login(self) -> None:
        self.app.notice = ""
        self.app.show("login").start()
