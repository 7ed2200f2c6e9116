"""Opaque page cursors: one codec for every keyset listing (documents, threads, the catalogue, the agenda,
access lists, FHIR ``_cursor`` links).

A cursor is a JSON list ``[1, value, …]`` (1: the format's version) in URL-safe base64 without padding. What
the values are is the listing's: it writes them with :func:`encode` and reads them back with :func:`decode`
and its own ``parse``, which raises ``ValueError``/``TypeError`` for a cursor of another listing or sort. A
forged or damaged cursor is refused with a reason (422 ``invalid_request``, field ``cursor``).
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, TypeVar

from backend.errors import DomainError
from backend.i18n import register_messages

T = TypeVar("T")
VERSION = 1

register_messages({"invalid_cursor": {"fr": "Curseur de pagination invalide.", "en": "Invalid pagination cursor."}})


def encode(*values: Any) -> str:
    raw = json.dumps([VERSION, *values], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(raw: str | None, parse: Callable[..., T]) -> T | None:
    """``parse(*values)`` of the cursor ``raw`` (None without one)."""
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
        if not isinstance(data, list) or not data or data[0] != VERSION:
            raise ValueError("not a cursor of this format")
        return parse(*data[1:])
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise refused() from None


def refused(field: str = "cursor", status: int = 422) -> DomainError:
    """The refusal of a cursor that does not name a position of this listing (also when it decodes well but
    its row is gone or another's)."""
    return DomainError("invalid_request", status, errors=[{"field": field, "message_code": "invalid_cursor"}])


def integer(value: Any) -> int:
    """A cursor's integer (a JSON ``true`` is not one)."""
    if type(value) is not int:
        raise TypeError("integer expected")
    return value
