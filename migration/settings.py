"""The dossier's ``settings.json``: validated whole (JSON Schema ``settings.schema.json`` plus the rules a
schema cannot say), then turned into :class:`LegacySettings`. Any problem raises :class:`SettingsInvalid`
with the JSON pointer of the culprit and the rule it breaks, and nothing is applied.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_PATH = Path(__file__).with_name("settings.schema.json")
MAX_SETTINGS_BYTES = 1024 * 1024


class SettingsInvalid(ValueError):
    def __init__(self, pointer: str, rule: str) -> None:
        super().__init__(f"{pointer or '/'}: {rule}")
        self.pointer = pointer or "/"
        self.rule = rule


@dataclass(frozen=True)
class ProfessionalRef:
    rpps: str
    family_name: str | None = None
    given_name: str | None = None
    profession: str | None = None
    since: dt.date | None = None


@dataclass(frozen=True)
class LegacySettings:
    identifiers: frozenset[tuple[str, str]] = frozenset()
    authorised: tuple[ProfessionalRef, ...] = ()
    blocked: tuple[ProfessionalRef, ...] = ()
    medecin_traitant: ProfessionalRef | None = None
    emergency: dict[str, bool] = field(default_factory=dict)
    mask_new_documents: bool | None = None


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _rpps(value: str) -> str:
    return value[1:] if len(value) == 12 else value


def _pro(raw: dict[str, Any]) -> ProfessionalRef:
    since = dt.date.fromisoformat(raw["since"]) if raw.get("since") else None
    return ProfessionalRef(_rpps(raw["rpps"]), raw.get("family_name"), raw.get("given_name"), raw.get("profession"),
                           since)


def parse(data: bytes) -> LegacySettings:
    if len(data) > MAX_SETTINGS_BYTES:
        raise SettingsInvalid("/", f"file larger than {MAX_SETTINGS_BYTES} bytes")
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise SettingsInvalid("/", "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SettingsInvalid("/", f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    validator = jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(raw), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        err = errors[0]
        pointer = "/" + "/".join(str(p) for p in err.absolute_path)
        # jsonschema repeats the instance in its message; keep only the rule (no data copied into logs)
        raise SettingsInvalid(pointer, _rule(err))
    ids = raw.get("identifiers", [])
    for i, ident in enumerate(ids):
        if ident["oid"] == "1.2.250.1.213.1.4.2" and not (len(ident["value"]) == 22 and ident["value"].isdigit()):
            raise SettingsInvalid(f"/identifiers/{i}/value", "an INS-C has exactly 22 digits")
    authorised = tuple(_pro(p) for p in raw.get("authorised_professionals", []))
    blocked = tuple(_pro(p) for p in raw.get("blocked_professionals", []))
    mt = _pro(raw["medecin_traitant"]) if raw.get("medecin_traitant") else None
    blocked_rpps = {b.rpps for b in blocked}
    for i, pro in enumerate(authorised):
        if pro.rpps in blocked_rpps:
            raise SettingsInvalid(f"/authorised_professionals/{i}/rpps",
                                  "the same professional is both authorised and blocked")
    if mt is not None and mt.rpps in blocked_rpps:
        raise SettingsInvalid("/medecin_traitant/rpps", "the médecin traitant is also blocked")
    seen: set[str] = set()
    for i, pro in enumerate(authorised):
        if pro.rpps in seen:
            raise SettingsInvalid(f"/authorised_professionals/{i}/rpps", "listed twice")
        seen.add(pro.rpps)
    return LegacySettings(
        identifiers=frozenset((i["oid"], i["value"].upper()) for i in ids), authorised=authorised, blocked=blocked,
        medecin_traitant=mt, emergency=dict(raw.get("emergency", {})),
        mask_new_documents=raw.get("mask_new_documents"))


def _rule(err: jsonschema.ValidationError) -> str:
    v = err.validator
    if v == "required":
        missing = [m for m in err.validator_value if isinstance(err.instance, dict) and m not in err.instance]
        return f"missing required property {', '.join(repr(m) for m in missing)}"
    if v == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {}))) if isinstance(err.instance, dict) else []
        return f"unknown property {', '.join(repr(e) for e in extra)}"
    if v == "pattern":
        return f"does not match the expected format {err.validator_value}"
    if v == "type":
        return f"must be of type {err.validator_value}"
    if v == "enum":
        return f"must be one of {', '.join(map(str, err.validator_value))}"
    if v == "const":
        return f"must be {err.validator_value!r}"
    if v == "format":
        return f"must be a {err.validator_value} (YYYY-MM-DD)"
    if v == "maxItems":
        return f"at most {err.validator_value} items"
    if v == "dependentRequired":
        return "family_name needs given_name and profession"
    if v == "oneOf":
        return "must be null or a professional {rpps, …}"
    return f"breaks the rule {v}"
