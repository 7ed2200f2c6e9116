"""The one cursor codec: what a listing writes it reads back; anything else is a 422 with a reason."""
from __future__ import annotations

import base64

import pytest

from backend import cursors
from backend.errors import DomainError


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_listing_reads_back_what_it_wrote():
    assert cursors.decode(cursors.encode("Ophtalmo", 42), lambda key, ident: (key, cursors.integer(ident))) == (
        "Ophtalmo", 42)
    assert cursors.decode(cursors.encode(7), cursors.integer) == 7
    assert cursors.decode(None, cursors.integer) is None and cursors.decode("", cursors.integer) is None
    assert "=" not in cursors.encode("é" * 5, 1)  # URL-safe, no padding


@pytest.mark.parametrize("raw", [
    "forged!", _raw("v1:12"), _raw("[2, 12]"), _raw("[]"), _raw('{"a": 1}'), _raw("[1, true]"), _raw("[1, 1.5]"),
    _raw("[1]"), _raw("[1, 1, 2]"), _raw("[" * 100_000 + "]" * 100_000), "\udcff", _raw("\x00")])
def test_anything_else_is_refused_with_a_reason(raw):
    with pytest.raises(DomainError) as refused:
        cursors.decode(raw, cursors.integer)
    assert refused.value.code == "invalid_request" and refused.value.status == 422
    assert refused.value.errors == [{"field": "cursor", "message_code": "invalid_cursor"}]
