"""The operators' catalogue file (JSON or YAML): its schema, and reading it into :class:`ServiceSpec`s.

One marshmallow schema (:class:`ServiceFileSchema`) says what a service entry holds; every fault of the
file is collected, each named with the entry it is in (``services[3] (pas-a-pas): 'themes' …``), so an
operator fixes the whole file at once. Nothing here touches the database (``operators.import_catalogue``
writes, all or nothing).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import marshmallow as ma

from backend.catalog.models import ServiceStatus
from backend.catalog.vocabulary import NATIONAL, PERMISSIONS, REGIONS, THEMES

SEED_FILE = Path(__file__).parent / "seed" / "catalogue.yaml"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
PURPOSE_MAX = 300
SLUG_RULE = "'slug' must be 3–64 lowercase letters, digits or dashes"


class CatalogFileError(Exception):
    """A catalogue file that cannot be imported; ``problems`` names every fault (nothing was written)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class ServiceSpec:
    slug: str
    name: str
    publisher: str
    summary: str
    description: str
    themes: list[str]
    regions: list[str]
    status: ServiceStatus | None
    privacy_policy_url: str
    website_url: str | None
    referenced_at: dt.date
    permissions: list[tuple[str, str | None]]
    client_id: str
    redirect_uris: list[str]
    confidential: bool


def load_file(path: str) -> Any:
    """A catalogue file, JSON or YAML (by extension; YAML is a superset of JSON for anything else)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            raw = handle.read()
    except OSError as exc:
        raise CatalogFileError([f"cannot read {path}: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise CatalogFileError([f"{path} is not UTF-8 text"]) from None
    try:
        if path.lower().endswith(".json"):
            return json.loads(raw)
        return yaml.safe_load(raw)
    except json.JSONDecodeError as exc:
        raise CatalogFileError([f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise CatalogFileError([f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}"]) from None


# --- the schema of one service ---------------------------------------------------------------------------

def _required(name: str) -> dict[str, str]:
    return {"required": f"'{name}' is required", "null": f"'{name}' is required"}


class _Text(ma.fields.Field):
    """Trimmed text of at most ``max_length`` characters; blank is missing."""

    def __init__(self, name: str, max_length: int, *, https: bool = False, **kwargs: Any) -> None:
        super().__init__(error_messages=_required(name), **kwargs)
        self.label, self.max_length, self.https = name, max_length, https

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        if isinstance(value, str) and not value.strip():
            if self.required:
                raise ma.ValidationError(f"'{self.label}' is required")
            return None
        if not isinstance(value, str):
            raise ma.ValidationError(f"'{self.label}' must be text")
        value = value.strip()
        problems = []
        if len(value) > self.max_length:
            problems.append(f"'{self.label}' is longer than {self.max_length} characters")
        parts = urlsplit(value)
        if self.https and (parts.scheme != "https" or not parts.netloc):
            problems.append(f"'{self.label}' must be an https:// address")
        if problems:
            raise ma.ValidationError(problems)
        return value


class _Themes(ma.fields.Field):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
            raise ma.ValidationError("'themes' must be a non-empty list of themes")
        unknown = [f"unknown theme '{t}' (known: {', '.join(THEMES)})" for t in value if t not in THEMES]
        if unknown:
            raise ma.ValidationError(unknown)
        return list(value)


class _Regions(ma.fields.Field):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        if not isinstance(value, list) or not value:
            raise ma.ValidationError("'regions' must be a non-empty list ('national' or INSEE region codes)")
        regions = [str(r) for r in value]
        unknown = [f"unknown region '{r}' ('national' or one of {', '.join(REGIONS)})"
                   for r in regions if r != NATIONAL and r not in REGIONS]
        if unknown:
            raise ma.ValidationError(unknown)
        return list(dict.fromkeys(regions))


class _Day(ma.fields.Field):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise ma.ValidationError("'referenced_at' must be a date (YYYY-MM-DD)")


class _Permissions(ma.fields.Field):
    """What the service asks: ``scope`` or ``{scope, purpose}``, each scope once."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[tuple[str, str | None]]:
        if not isinstance(value, list) or not value:
            raise ma.ValidationError("'permissions' must be a non-empty list")
        problems: list[str] = []
        out: list[tuple[str, str | None]] = []
        for index, item in enumerate(value):
            if isinstance(item, dict) and set(item) - {"scope", "purpose"}:
                # YAML's flow mapping {scope: …, purpose: a, b} ends the text at the first comma and makes "b" a
                # key: the patient would read half a sentence. Refused, with the way out.
                extra = ", ".join(repr(str(k)) for k in item if k not in ("scope", "purpose"))
                problems.append(f"permissions[{index}]: unexpected {extra} (a comma in an unquoted "
                                "'purpose' cuts it: put the text in quotes)")
                continue
            scope, purpose = (item, None) if isinstance(item, str) else (
                (item.get("scope"), item.get("purpose")) if isinstance(item, dict) else (None, None))
            if not isinstance(scope, str) or scope not in PERMISSIONS:
                problems.append(f"permissions[{index}]: unknown permission {scope!r} "
                                "(documents.<CATEGORY>.read, measures.<type>.read|write, profile.<kind>.read)")
            elif purpose is not None and (not isinstance(purpose, str) or len(purpose) > PURPOSE_MAX):
                problems.append(f"permissions[{index}]: 'purpose' must be text of at most {PURPOSE_MAX} characters")
            elif any(scope == s for s, _ in out):
                problems.append(f"permission '{scope}' listed twice")
            else:
                out.append((scope, purpose.strip() if purpose else None))
        if problems:
            raise ma.ValidationError(problems)
        return out


def redirect_uri_ok(uri: str) -> bool:
    """https, a loopback http address (RFC 8252 §7.3) or a private-use scheme of a native app (§7.1)."""
    parts = urlsplit(uri)
    if parts.fragment:
        return False
    if parts.scheme == "https":
        return bool(parts.netloc)
    if parts.scheme == "http":
        return parts.hostname in ("127.0.0.1", "::1", "localhost")
    return "." in parts.scheme and re.fullmatch(r"[a-z][a-z0-9.+-]*", parts.scheme) is not None


class _Client(ma.fields.Field):
    """The service's OAuth client: ``{client_id, redirect_uris, confidential}``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[str, list[str], bool]:
        if not isinstance(value, dict) or set(value) - {"client_id", "redirect_uris", "confidential"}:
            raise ma.ValidationError("'client' must be {client_id, redirect_uris, confidential}")
        problems = []
        client_id, uris, confidential = value.get("client_id"), value.get("redirect_uris"), value.get("confidential", False)
        if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
            problems.append("'client.client_id' must be 8–64 letters, digits, dots, dashes or underscores")
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) and redirect_uri_ok(u) for u in uris):
            problems.append("'client.redirect_uris' must list https://, loopback http:// or native-app (reverse "
                            "domain) addresses, without fragment")
        if not isinstance(confidential, bool):
            problems.append("'client.confidential' must be true or false")
        if problems:
            raise ma.ValidationError(problems)
        return client_id, list(uris), confidential


_UNKNOWN = "\x00unknown"


class ServiceFileSchema(ma.Schema):
    """One service of the catalogue file."""

    class Meta:
        unknown = ma.RAISE

    error_messages = {"unknown": _UNKNOWN, "type": "each service must be a mapping"}

    slug = ma.fields.String(required=True, error_messages={**_required("slug"), "invalid": SLUG_RULE},
                            validate=ma.validate.Regexp(SLUG, error=SLUG_RULE))
    name = _Text("name", 120, required=True)
    publisher = _Text("publisher", 200, required=True)
    summary = _Text("summary", 300, required=True)
    description = _Text("description", 5000, required=True)
    themes = _Themes(required=True, error_messages=_required("themes"))
    regions = _Regions(required=True, error_messages=_required("regions"))
    status = ma.fields.Enum(ServiceStatus, by_value=True, load_default=None, allow_none=True, error_messages={
        "unknown": "'status' must be one of " + ", ".join(s.value for s in ServiceStatus)})
    privacy_policy_url = _Text("privacy_policy_url", 500, https=True, required=True)
    website_url = _Text("website_url", 500, https=True, load_default=None, allow_none=True)
    referenced_at = _Day(required=True, error_messages=_required("referenced_at"))
    permissions = _Permissions(required=True, error_messages=_required("permissions"))
    client = _Client(required=True, error_messages=_required("client"))

    @ma.post_load
    def _spec(self, data: dict[str, Any], **kwargs: Any) -> ServiceSpec:
        client_id, redirect_uris, confidential = data.pop("client")
        return ServiceSpec(client_id=client_id, redirect_uris=redirect_uris, confidential=confidential, **data)


_SCHEMA = ServiceFileSchema()


def _problems(errors: Any, key: str | None = None) -> list[str]:
    """marshmallow's messages, flattened in the file's order ("unknown field 'x'" for a field not known)."""
    if isinstance(errors, dict):
        return [p for k, v in errors.items() for p in _problems(v, str(k))]
    if isinstance(errors, list):
        return [p for item in errors for p in _problems(item, key)]
    return [f"unknown field '{key}'" if errors == _UNKNOWN else str(errors)]


def parse_service(raw: Any, where: str, problems: list[str]) -> ServiceSpec | None:
    try:
        return _SCHEMA.load(raw)  # type: ignore[no-any-return]
    except ma.ValidationError as refused:
        problems.extend(f"{where}: {p}" for p in _problems(refused.messages))
        return None


def parse_catalogue(data: Any) -> list[ServiceSpec]:
    """Every service of a catalogue file, or CatalogFileError listing every fault."""
    if isinstance(data, dict) and set(data) == {"services"}:
        data = data["services"]
    if not isinstance(data, list):
        raise CatalogFileError(["the file must hold a list of services (or {services: [...]})"])
    problems: list[str] = []
    specs: list[ServiceSpec] = []
    for index, raw in enumerate(data):
        label = raw.get("slug") if isinstance(raw, dict) and isinstance(raw.get("slug"), str) else None
        spec = parse_service(raw, f"services[{index}]" + (f" ({label})" if label else ""), problems)
        if spec is not None:
            specs.append(spec)
    for attr in ("slug", "client_id"):
        seen: set[str] = set()
        for spec in specs:
            value = getattr(spec, attr)
            if value in seen:
                problems.append(f"{attr} '{value}' appears twice in the file")
            seen.add(value)
    if problems:
        raise CatalogFileError(problems)
    return specs
