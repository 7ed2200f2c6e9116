"""The record kept on the device for reading without network, encrypted at rest (no Kivy here).

What is kept: the last synced documents list, medical profile, directives, upcoming appointments,
the emergency card, and the documents the patient downloaded — one file per item under
``<data dir>/offline/``, each sealed with AES-256-GCM (``cryptography``), its name bound in as
associated data so a file cannot be swapped for another.

Key: derived with HKDF-SHA256 from a 32-byte device secret created on first use in
``<data dir>/device.secret`` (mode 0600) and from the patient's id, so two patients sharing a
device do not read each other's cache.

Threat model, honestly: this protects the cache against someone who gets the cache files
alone (a backup, a copied folder, a file-browsing app reading shared storage, a forensic copy
of the ``offline`` folder). It does **not** protect against someone who can read the app's
private data directory as a whole (rooted phone, the app's own process, a full-device image):
the secret sits next to the cache. Using the platform keystore (Android Keystore, iOS Keychain)
for the device secret would close that gap; it is not available from this pure-Python module.
Signing out of the device (``forget``) deletes the cache and the secret.

Reading without network: :class:`OfflineAnswers` gives the API client (``CarnetClient.offline_store``)
the last synced answer of the record's GETs, and keeps what the patient opened of a document; the app's
offline mode (banner, probe, sync on reconnect) is ``mobile.connectivity``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_FILE = "device.secret"
LAST_PATIENT_FILE = "offline.patient"
CACHE_DIR = "offline"
FORMAT = b"carnet-offline-v1"
# What a synced record holds; ``document:<id>`` items hold downloaded files.
RECORD_PARTS = ("documents", "profile", "profile_kinds", "directives", "appointments", "emergency_card", "home")


class OfflineCacheError(Exception):
    """A cache file that cannot be read back (tampered with, another key, truncated)."""


def _device_secret(data_dir: Path) -> bytes:
    path = data_dir / SECRET_FILE
    try:
        secret = path.read_bytes()
        if len(secret) == 32:
            return secret
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secret)
    return secret


class OfflineCache:
    """One patient's encrypted cache on this device."""

    def __init__(self, data_dir: str | Path, patient_key: str) -> None:
        self.data_dir = Path(data_dir)
        self.patient_key = str(patient_key)
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=FORMAT,
                   info=b"patient:" + self.patient_key.encode()).derive(_device_secret(self.data_dir))
        self._aead = AESGCM(key)
        # The patient's files live under a name that does not reveal the patient's id.
        folder = HKDF(algorithm=hashes.SHA256(), length=8, salt=FORMAT, info=b"folder").derive(key).hex()
        self.dir = self.data_dir / CACHE_DIR / folder

    def _path(self, name: str) -> Path:
        return self.dir / (name.replace(":", "_").replace("/", "_") + ".bin")

    def put(self, name: str, value: Any) -> None:
        """Keep ``value`` (JSON-able, or bytes for a downloaded document) under ``name``."""
        if isinstance(value, bytes | bytearray):
            kind, payload = b"b", bytes(value)
        else:
            kind, payload = b"j", json.dumps(value, ensure_ascii=False).encode()
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, kind + payload, FORMAT + name.encode())
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self._path(name).with_suffix(".tmp")
        tmp.write_bytes(nonce + sealed)
        tmp.replace(self._path(name))

    def get(self, name: str, default: Any = None) -> Any:
        try:
            blob = self._path(name).read_bytes()
        except FileNotFoundError:
            return default
        try:
            plain = self._aead.decrypt(blob[:12], blob[12:], FORMAT + name.encode())
        except (InvalidTag, ValueError) as exc:
            raise OfflineCacheError(f"the offline copy of {name!r} cannot be read") from exc
        return plain[1:] if plain[:1] == b"b" else json.loads(plain[1:])

    def save_record(self, record: dict[str, Any]) -> None:
        """Keep the parts of a sync, and when it happened."""
        for part in RECORD_PARTS:
            if part in record:
                self.put(part, record[part])
        self.put("synced_at", time.time())

    def record(self) -> dict[str, Any]:
        """The last synced record (missing parts are None) and ``synced_at`` (epoch seconds)."""
        out = {part: self.get(part) for part in RECORD_PARTS}
        out["synced_at"] = self.get("synced_at")
        return out

    def put_document(self, document_id: int | str, content: bytes, meta: dict | None = None) -> None:
        self.put(f"document:{document_id}", content)
        if meta is not None:
            self.put(f"document_meta:{document_id}", meta)

    def document(self, document_id: int | str) -> bytes | None:
        return self.get(f"document:{document_id}")

    def forget(self) -> None:
        """Delete this patient's cache (sign-out of the device, account closed)."""
        if self.dir.exists():
            for path in self.dir.iterdir():
                path.unlink()
            self.dir.rmdir()


def sync_record(client: Any, data_dir: str | Path) -> tuple[OfflineCache, dict[str, Any]]:
    """Fetch the parts of the record kept offline with ``client`` (a ``CarnetClient`` holding an access
    token) and seal them in the patient's cache. Parts that fail for another reason than the session or
    the network are left as they were (a stale copy is better than none). Returns the cache and the
    emergency card. Raises ``ApiError`` on a 401 or a network failure, for the caller to fall back."""
    from mobile.api import ApiError

    me = client.me()
    cache = OfflineCache(data_dir, str(me.get("patient_id")))
    fetched: dict[str, Any] = {}
    today = time.strftime("%Y-%m-%d")
    for part, path, params in (("profile", "/record/profile", None), ("directives", "/record/directives", None),
                               ("profile_kinds", "/record/profile/kinds", None),
                               ("documents", "/record/documents", {"limit": 50}),
                               ("appointments", "/agenda/appointments", {"from": today, "limit": 100}),
                               ("home", "/home", None)):
        try:
            fetched[part] = client.call("GET", path, params=params)
        except ApiError as error:
            if error.status in (0, 401):
                raise
    card = emergency_card(fetched.get("profile") or cache.get("profile"),
                          fetched.get("directives") or cache.get("directives"), me)
    cache.save_record({**fetched, "emergency_card": card})
    (Path(data_dir) / LAST_PATIENT_FILE).write_text(cache.patient_key)
    return cache, card


_DOCUMENT_PATH = re.compile(r"^/record/documents/(\d+)(?:/(narrative|content)|/pages/(\d+))?$")
# GET paths answered from a part of the synced record, as the API answered them.
_PART_PATHS = {"/record/profile": "profile", "/record/profile/kinds": "profile_kinds",
               "/record/directives": "directives", "/home": "home"}


class OfflineAnswers:
    """What the API client answers without network, from one patient's cache (``CarnetClient.offline_store``).

    ``answer(path, params)`` gives the last synced answer of a ``GET`` (the documents list and the upcoming
    appointments filtered here as the server would, on one page), or None when the device has no copy: the
    caller then fails as without a cache. ``keep(path, params, value)`` is called with what the server
    answered; it keeps what the patient opened of a document (its description, readable content, page
    images, downloaded file) so that it opens again offline. The list, profile, directives and agenda are
    kept by :func:`sync_record` only, so ``synced_at`` tells the truth about all of them.
    """

    def __init__(self, cache: OfflineCache) -> None:
        self.cache = cache

    def synced_at(self) -> float | None:
        try:
            return self.cache.get("synced_at")
        except OfflineCacheError:
            return None

    def answer(self, path: str, params: dict | None = None) -> Any:
        params = params or {}
        try:
            if path in _PART_PATHS:
                return self.cache.get(_PART_PATHS[path])
            if path == "/record/documents":
                return self._documents(params)
            if path == "/agenda/appointments":
                return self._appointments(params)
            match = _DOCUMENT_PATH.match(path)
            if match is None:
                return None
            document_id, what, page = match.groups()
            if page:
                return self.cache.get(f"page:{document_id}:{page}")
            if what == "narrative":
                return self.cache.get(f"narrative:{document_id}")
            if what == "content":
                return self.cache.document(document_id)
            return self.cache.get(f"document_meta:{document_id}") or self._listed(int(document_id))
        except OfflineCacheError:
            return None  # a copy that cannot be read is no copy

    def keep(self, path: str, params: dict | None, value: Any) -> None:
        match = _DOCUMENT_PATH.match(path)
        if match is None or value is None:
            return
        document_id, what, page = match.groups()
        name = (f"page:{document_id}:{page}" if page else f"narrative:{document_id}" if what == "narrative"
                else f"document:{document_id}" if what == "content" else f"document_meta:{document_id}")
        self.cache.put(name, value)

    def _documents(self, params: dict) -> dict | None:
        page = self.cache.get("documents")
        if page is None:
            return None
        items = page.get("items") or []
        categories = params.get("category") or []
        categories = [categories] if isinstance(categories, str) else list(categories)
        if categories:
            items = [d for d in items if d.get("category") in categories]
        for key, field in (("q", "title"), ("author", "author_name")):
            wanted = str(params.get(key) or "").casefold()
            if wanted:
                items = [d for d in items if wanted in str(d.get(field) or "").casefold()]
        if params.get("cursor"):
            items = []  # one page offline: everything kept came with the first
        total = page.get("total", len(items)) if not (categories or params.get("q") or params.get("author")) \
            else len(items)
        return {**page, "items": items, "next_cursor": None, "total": total}

    def _listed(self, document_id: int) -> dict | None:
        page = self.cache.get("documents") or {}
        for item in page.get("items") or []:
            if item.get("id") == document_id:
                # What the list says of it; the viewer offers nothing to act on without network.
                return {**item, "viewer": {"kind": "download"}, "actions": {}}
        return None

    def _appointments(self, params: dict) -> dict | None:
        page = self.cache.get("appointments")
        if page is None:
            return None
        start, end = str(params.get("from") or ""), str(params.get("to") or "9999")
        items = [a for a in page.get("items") or [] if start <= str(a.get("starts_at") or "")[:10] <= end]
        return {**page, "items": items, "next_cursor": None}


def last_patient(data_dir: str | Path) -> str | None:
    """Which patient's cache opens without a session on this device (an id, not health data)."""
    try:
        return (Path(data_dir) / LAST_PATIENT_FILE).read_text().strip() or None
    except OSError:
        return None


def _titles(bucket: Any) -> list[str]:
    items = bucket.get("items") if isinstance(bucket, dict) else bucket
    out = []
    for item in items or []:
        if isinstance(item, dict):
            fields = item.get("fields") if isinstance(item.get("fields"), dict) else {}
            text = (item.get("title") or item.get("label") or item.get("name") or fields.get("substance")
                    or fields.get("name") or fields.get("group"))
            if text:
                out.append(str(text))
        elif item:
            out.append(str(item))
    return out


def _implants(bucket: Any) -> list[str]:
    """'Prothèse totale de hanche (hanche gauche) — Corail, 14/06/2021': what a rescuer must know
    (MRI, defibrillation, surgery)."""
    items = bucket.get("items") if isinstance(bucket, dict) else bucket
    out = []
    for item in items or []:
        fields = item.get("fields") if isinstance(item, dict) and isinstance(item.get("fields"), dict) else {}
        device = fields.get("device") or (item.get("title") if isinstance(item, dict) else None)
        if not device:
            continue
        line = str(device) + (f" ({fields['site']})" if fields.get("site") else "")
        if fields.get("brand_model"):
            line += f" — {fields['brand_model']}"
        if fields.get("implant_date"):
            line += ", " + "/".join(reversed(str(fields["implant_date"]).split("-")))   # 2021-06-14 → 14/06/2021
        out.append(line)
    return out


def _contact_lines(bucket: Any) -> list[str]:
    """'Julien Martin (Conjoint) : 06 12 34 56 78': who to call, and the number."""
    items = bucket.get("items") if isinstance(bucket, dict) else bucket
    out = []
    for item in items or []:
        name = _titles([item])
        if not name:
            continue
        fields = item.get("fields") if isinstance(item, dict) and isinstance(item.get("fields"), dict) else {}
        line = name[0] + (f" ({fields['relationship']})" if fields.get("relationship") else "")
        if fields.get("phone"):
            line += f" : {fields['phone']}"
        out.append(line)
    return out


def _allergy_details(bucket: Any) -> list[dict[str, str]]:
    """Each allergy with what a stranger needs in an emergency: how severe, what it does."""
    items = bucket.get("items") if isinstance(bucket, dict) else bucket
    out = []
    for item in items or []:
        if not isinstance(item, dict):
            continue
        fields = item.get("fields") if isinstance(item.get("fields"), dict) else {}
        substance = item.get("title") or fields.get("substance") or item.get("label")
        if substance:
            out.append({"substance": str(substance), "severity": str(fields.get("severity") or ""),
                        "reaction": str(fields.get("reaction") or "")})
    return out


def emergency_card(profile: dict | None, directives: dict | None, me: dict | None = None) -> dict[str, Any]:
    """The emergency card from the synced profile (``/record/profile``: ``entries`` per kind), directives
    (``/record/directives``) and identity (``/me``): whose card it is, allergies (with severity and reaction),
    treatments, implanted devices, contacts, directives, blood group. Tolerates missing parts: an empty card still opens
    offline. A new part is one more key here and one more section on the screen."""
    profile = profile or {}
    directives = directives or {}
    entries = profile.get("entries") if isinstance(profile.get("entries"), dict) else profile
    blood = _titles(entries.get("blood_group"))
    blood_items = (entries.get("blood_group") or {}).get("items") if isinstance(entries.get("blood_group"), dict) \
        else None
    if blood_items and isinstance(blood_items[0], dict) and isinstance(blood_items[0].get("fields"), dict):
        fields = blood_items[0]["fields"]
        rhesus = {"positive": "+", "negative": "−"}.get(str(fields.get("rhesus") or ""), "")
        if fields.get("group"):
            blood = [f"{fields['group']}{rhesus}"]
    said = []
    for context in ("end_of_life", "good_health"):
        part = directives.get(context)
        if isinstance(part, dict) and part.get("current"):
            current = part["current"]
            text = current.get("text") if isinstance(current, dict) else None
            said.append(f"{part.get('label') or context}: {text}" if text else str(part.get("label") or context))
    donation = directives.get("organ_donation")
    if isinstance(donation, dict) and (donation.get("label") or donation.get("position")):
        said.append(str(donation.get("label") or donation.get("position")))
    card = {
        "blood_group": profile.get("blood_group") or (blood[0] if blood else ""),
        "allergies": _titles(entries.get("allergy") or entries.get("allergies")),
        "treatments": _titles(entries.get("treatment") or entries.get("treatments")),
        "contacts": _contact_lines(entries.get("contact") or entries.get("contacts")),
        "implants": _implants(entries.get("implant")),
        "directives": said or _titles(directives.get("items")),
    }
    details = _allergy_details(entries.get("allergy") or entries.get("allergies"))
    if any(d["severity"] or d["reaction"] for d in details):
        card["allergy_details"] = details
    if me:
        names = (me.get("given_names") or me.get("given_name") or "").split()
        card["holder"] = {"given_name": names[0] if names else "", "family_name": me.get("family_name") or "",
                          "birth_date": str(me.get("birth_date") or ""), "sex": me.get("sex") or ""}
    return card
