"""The professional API (IHE MHD on FHIR R4 at ``/fhir/R4``) and the patient's "take my data with me"
export (a FHIR R4 Bundle of the whole record, or a ZIP of the originals)."""
from __future__ import annotations

from flask import Flask

DEFAULTS = {
    # ITI-65: the largest bundle accepted (base64 makes a document a third bigger) and the largest document.
    "FHIR_MAX_BUNDLE_BYTES": 64 * 1024 * 1024,
    "FHIR_MAX_DOCUMENT_BYTES": 40 * 1024 * 1024,
    # The public base URL of /fhir/R4 behind a proxy (fullUrl, links); the request's own URL otherwise.
    "FHIR_BASE_URL": None,
}


def init_app(app: Flask) -> None:
    from backend.fhir import auth, capability, messages  # noqa: F401
    from backend.fhir.api import bp
    from backend.fhir.export_api import blp as export_blp

    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    auth.init_app(app)
    capability.init_app(app)
    # one CapabilityStatement for the whole /fhir/R4 base: the agenda's Schedule/Slot/Appointment too
    from backend.agenda.fhir import capability_resources

    for resource in capability_resources():
        capability.register_resource(app, resource)
    app.register_blueprint(bp)
    app.extensions["carnet.api"].register_blueprint(export_blp)
