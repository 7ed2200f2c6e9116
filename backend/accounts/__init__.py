"""Patient accounts from pre-creation to closure."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from backend.accounts.api import blp

    app.extensions["carnet.api"].register_blueprint(blp)
