"""The catalogue of referenced health services and consented data sharing.

Patient endpoints under ``/api/v1/catalog`` (``api.py``), the services' OAuth 2.0 token endpoint at
``/oauth/token`` and their FHIR R4 API under ``/api/service/v1/fhir`` (``oauth.py``, ``service_api.py``),
operators' ``carnet catalog`` commands (``cli.py``), and two reminders in the notifications job registry
(``reminders.py``).
"""
from __future__ import annotations

from flask import Flask

from backend.config import add_defaults

DEFAULTS = {
    "SERVICE_CONSENT_DAYS": 365,          # a consent lapses unless renewed
    "SERVICE_RENEWAL_NOTICE_DAYS": 30,    # renewal reminder this long before
    "SERVICE_REVIEW_DAYS": 90,            # "review your connected services" reminder
    "SERVICE_ACCESS_TOKEN_SECONDS": 3600,
    "SERVICE_REFRESH_TOKEN_DAYS": 30,
}


def init_app(app: Flask) -> None:
    from backend.catalog import messages  # noqa: F401  (registers the texts)
    from backend.catalog import oauth, reminders  # noqa: F401  (reminders register their sources)
    from backend.catalog.api import blp
    from backend.catalog.cli import catalog_group
    from backend.catalog.service import CatalogSettings
    from backend.catalog.service_api import bp as service_bp
    from backend.config import ConfigError

    add_defaults(app.config, DEFAULTS)
    try:
        settings = CatalogSettings.from_config(app.config)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"catalogue settings: {exc}") from None
    if min(settings.consent_days, settings.renewal_notice_days, settings.review_days,
           settings.access_token_seconds, settings.refresh_token_days) <= 0:
        raise ConfigError("SERVICE_CONSENT_DAYS, _RENEWAL_NOTICE_DAYS, _REVIEW_DAYS, _ACCESS_TOKEN_SECONDS and "
                          "_REFRESH_TOKEN_DAYS must be positive")
    app.extensions["carnet.catalog"] = settings
    oauth.init_app(app, settings)
    app.extensions["carnet.api"].register_blueprint(blp)
    app.register_blueprint(service_bp)
    app.register_blueprint(oauth.token_bp)
    app.cli.add_command(catalog_group)
