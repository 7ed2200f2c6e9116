"""The professional API (IHE MHD on FHIR R4 at ``/fhir/R4``), the one FHIR layer every FHIR-speaking feature
uses (``layer.py``), and the patient's "take my data with me" export (a FHIR R4 Bundle of the whole record, or
a ZIP of the originals)."""
from __future__ import annotations

from flask import Flask

from backend.config import add_defaults

DEFAULTS = {
    # ITI-65: the largest bundle accepted (base64 makes a document a third bigger) and the largest document.
    "FHIR_MAX_BUNDLE_BYTES": 64 * 1024 * 1024,
    "FHIR_MAX_DOCUMENT_BYTES": 40 * 1024 * 1024,
    # The public base of /fhir/R4 when it is not <CARNET_PUBLIC_BASE_URL>/fhir/R4 (a proxy rewriting paths).
    "FHIR_BASE_URL": None,
}


def init_app(app: Flask) -> None:
    from backend.fhir.api import bp
    from backend.fhir.auth import init_app as init_auth
    from backend.fhir.export_api import blp as export_blp

    add_defaults(app.config, DEFAULTS)
    init_auth(app)
    app.register_blueprint(bp)
    app.extensions["carnet.api"].register_blueprint(export_blp)
