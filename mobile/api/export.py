"""'Take my data with me' from the app, without Kivy: the whole record downloaded to a file.

``GET /record/export/fhir`` (a FHIR R4 Bundle, JSON) and ``GET /record/export/zip`` (the original
documents and a manifest) stream: the server does not know the size in advance, so progress is the
number of bytes received so far. The file is written under a ``.part`` name and renamed only when the
last byte has arrived: an interrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import requests

from .client import CarnetClient
from .errors import ApiError
from .records import _filename

log = logging.getLogger(__name__)

EXPORT_FORMATS = {"fhir": "fhir.json", "zip": "zip"}
CHUNK = 64 * 1024
# The server builds the export while it sends it: a large record may pause between pieces.
EXPORT_TIMEOUT = (5.0, 120.0)


def export_record(
    client: CarnetClient,
    fmt: str,
    folder: str | Path,
    on_progress: Callable[[int], None] | None = None,
) -> Path:
    """Download the export in ``fmt`` (``fhir`` | ``zip``) into ``folder``; → the file's path.

    ``on_progress(bytes_received)`` is called as pieces arrive (from the calling thread)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {tuple(EXPORT_FORMATS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    accept = "application/fhir+json" if fmt == "fhir" else "application/zip"
    response = client.send("GET", f"/record/export/{fmt}", accept=accept, stream=True, timeout=EXPORT_TIMEOUT)
    try:
        with response:
            name = _filename(response.headers.get("Content-Disposition"), f"carnet-dossier.{EXPORT_FORMATS[fmt]}")
            target = folder / name
            partial = target.with_name(target.name + ".part")
            received = 0
            try:
                with partial.open("wb") as out:
                    for chunk in response.iter_content(CHUNK):
                        out.write(chunk)
                        received += len(chunk)
                        if on_progress is not None:
                            on_progress(received)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
    except requests.RequestException as exc:
        log.info("GET /record/export/%s failed before the end: %s", fmt, exc)
        raise ApiError.network(client.language) from exc
    return target


__all__ = ["EXPORT_FORMATS", "export_record"]
