"""Patient accounts from pre-creation to closure."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from backend.accounts.api import blp
    from backend.accounts.reset_api import blp as reset_blp  # the forgotten password

    app.extensions["carnet.api"].register_blueprint(blp)
    app.extensions["carnet.api"].register_blueprint(reset_blp)
