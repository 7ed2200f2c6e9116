"""The shared medical record (DMP)."""
from __future__ import annotations

import base64
import hashlib

from flask import Flask, current_app
from sqlalchemy.orm import Session

from backend.records.crypto import Keyring, Vault


def init_app(app: Flask) -> None:
    from backend.records.access import messages  # noqa: F401
    from backend.records.profile import messages as messages_profile  # noqa: F401
    from backend.records.profile.api import blp as profile_blp
    from backend.records.cli import keys_group

    app.extensions["carnet.keyring"] = _keyring(app)
    app.cli.add_command(keys_group)
    # Documents: patient uploads up to 10 MB (domain.md, config CARNET_UPLOAD_MAX_BYTES), and their endpoints.
    from backend.records.documents.api import blp as documents_blp

    app.config.setdefault("UPLOAD_MAX_BYTES", 10 * 1024 * 1024)
    app.extensions["carnet.api"].register_blueprint(documents_blp)
    app.extensions["carnet.api"].register_blueprint(profile_blp)
    from backend.records.access import api as api_access  # the access page and history; attaches the policy settings

    api_access.init_app(app)


def _keyring(app: Flask) -> Keyring:
    current = app.config.get("MASTER_KEY")
    if not current:
        # Tests only (config.check refuses a missing key elsewhere): a key derived from the test secret.
        current = base64.b64encode(hashlib.sha256(f"master:{app.config['SECRET_KEY']}".encode()).digest()).decode()
    previous = str(app.config.get("MASTER_KEYS_PREVIOUS") or "").split(",")
    return Keyring.from_config(str(current), previous)


def vault(session: Session) -> Vault:
    """The request's key vault (API layer helper; services receive the Vault)."""
    return Vault(session, current_app.extensions["carnet.keyring"])
