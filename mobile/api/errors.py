"""The one error type the mobile client raises, built from RFC 9457 problem bodies.

Screens show ``ApiError.detail`` to the patient as it is: the server already wrote it in
the patient's language. Failures that never reached the server get a sentence written here,
so a screen never has to invent one (and never shows raw JSON or a Python traceback).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Written for the patient, not for a developer: what happened and what to do next.
_NETWORK_DETAIL = {
    "fr": "Impossible de joindre Carnet. Vérifiez votre connexion internet puis réessayez.",
    "en": "Carnet cannot be reached. Check your internet connection and try again.",
}
_UNEXPECTED_DETAIL = {
    "fr": "Une erreur inattendue est survenue. Veuillez réessayer dans quelques instants.",
    "en": "Something unexpected went wrong. Please try again in a few moments.",
}


def _in(language: str, sentences: dict[str, str]) -> str:
    return sentences.get(language, sentences["fr"])


@dataclass(frozen=True)
class FieldError:
    """One entry of a problem's ``errors`` list, e.g. a password rule the server rejected."""

    rule: str
    message: str
    field: str | None = None


@dataclass(eq=False)
class ApiError(Exception):
    """A request to the Carnet API that did not succeed.

    ``status`` is the HTTP status, or 0 when no HTTP answer arrived (``code == "network"``).
    ``retry_after`` is in seconds, from the ``Retry-After`` header of a 429.
    """

    status: int
    code: str
    detail: str
    retry_after: int | None = None
    errors: tuple[FieldError, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.detail}"

    @property
    def is_network(self) -> bool:
        return self.status == 0

    @classmethod
    def network(cls, language: str) -> ApiError:
        return cls(status=0, code="network", detail=_in(language, _NETWORK_DETAIL))

    @classmethod
    def unexpected(cls, language: str, status: int = 0) -> ApiError:
        return cls(status=status, code="unexpected", detail=_in(language, _UNEXPECTED_DETAIL))

    @classmethod
    def from_response(cls, response: Any, language: str) -> ApiError:
        """The error an HTTP answer that is not a success stands for (its problem+json, if any)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        return cls.from_problem(response.status_code, body, response.headers.get("Retry-After"), language)

    @classmethod
    def from_problem(
        cls, status: int, body: Any, retry_after_header: str | None, language: str
    ) -> ApiError:
        """Build the error from a problem+json body; tolerate a body that is not one."""
        problem = body if isinstance(body, dict) else {}
        detail = problem.get("detail") or problem.get("title")
        if not isinstance(detail, str) or not detail.strip():
            detail = _in(language, _UNEXPECTED_DETAIL)
        code = problem.get("code")
        if not isinstance(code, str) or not code:
            code = "unexpected"
        return cls(
            status=status,
            code=code,
            detail=detail,
            retry_after=_parse_retry_after(retry_after_header),
            errors=_parse_field_errors(problem.get("errors")),
        )


def _parse_retry_after(value: str | None) -> int | None:
    # The API sends delta-seconds; an HTTP date is allowed by RFC 9110 but not used here.
    if value is None:
        return None
    try:
        return max(0, int(value.strip()))
    except ValueError:
        return None


def _parse_field_errors(raw: Any) -> tuple[FieldError, ...]:
    if not isinstance(raw, list):
        return ()
    parsed = []
    for item in raw:
        if isinstance(item, dict):
            parsed.append(
                FieldError(
                    rule=str(item.get("rule") or item.get("code") or ""),
                    message=str(item.get("message") or ""),
                    field=item.get("field"),
                )
            )
    return tuple(parsed)
