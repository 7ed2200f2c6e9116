"""Carnet backend-for-frontend: ``create_app`` builds the Flask app from the environment."""
from __future__ import annotations

import logging.config
import os
from typing import Any

from flask import Flask, Response, jsonify, request

from backend import config as config_module

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {"werkzeug": {"level": "WARNING"}, "alembic": {"level": "WARNING"}},
}


# Each feature package exposes init_app(app): blueprints, activation handlers, CLI commands.
FEATURES = [
    "backend.accounts",
    "backend.notifications",
    "backend.agenda",
    "backend.records",
    "backend.messaging",
    "migration",
    "backend.catalog",
    "backend.fhir",
    "backend.insurer",
    "backend.family",
]


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    if not (overrides or {}).get("TESTING"):
        logging.config.dictConfig(LOGGING)
    app = Flask(__name__, instance_path=os.environ.get("CARNET_INSTANCE_PATH") or None,
                instance_relative_config=True)
    app.config.from_mapping(config_module.DEFAULTS)
    app.config.from_prefixed_env("CARNET")
    if overrides:
        app.config.update(overrides)
    config_module.check(app.config)
    app.config["SQLALCHEMY_URL"] = config_module.database_url(app.config, app.instance_path)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    from backend import models  # noqa: F401  (all tables known to the metadata)
    from backend import web
    from backend.db import Database
    from backend.errors import register_error_handlers
    from backend.tasks import configure_queue

    Database().init_app(app, app.config["SQLALCHEMY_URL"])
    from backend import blobs

    blobs.init_app(app)  # document and attachment bytes: a directory or an S3 bucket (backend/blobs.py)
    configure_queue(app)
    web.init_app(app)
    register_error_handlers(app)

    import importlib

    for feature in FEATURES:
        importlib.import_module(feature).init_app(app)
    _register_plain_routes(app)
    from backend.tools import production

    production.init_app(app)  # /api/ready; ProxyFix when CARNET_PROXY_FIX_COUNT > 0

    from backend.tools.cli import register_commands

    register_commands(app)
    return app


def _register_plain_routes(app: Flask) -> None:
    from backend.web import public

    @app.get("/api/health")
    @public
    def health() -> Response:
        """Liveness, and the bare endpoint benchmarks compare against."""
        return jsonify(status="ok")

    @app.before_request
    def _json_only() -> Response | None:
        # A body under /api that is not JSON is refused (415) before any parsing.
        if request.path.startswith("/api/") and request.method in {"POST", "PUT", "PATCH"}:
            if request.content_length and not request.is_json and request.mimetype != "multipart/form-data":
                from backend.errors import error_response
                from backend.i18n import message

                return error_response(415, "unsupported_media_type", message("unsupported_media_type"))
        return None

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response
