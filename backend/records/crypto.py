"""Encryption at rest: each patient has a random 256-bit data key, wrapped (AES-GCM) by a master key.

Master keys come from configuration (``CARNET_MASTER_KEY``: base64 of 32 bytes, or ``CARNET_MASTER_KEY_FILE``);
``CARNET_MASTER_KEYS_PREVIOUS`` (comma-separated) keeps older ones readable until ``carnet keys rotate``
re-wraps every data key with the current one. Content is sealed with the patient's key and an AAD that
binds it to its place (e.g. ``document:42``), so ciphertexts cannot be swapped between rows.
"""
from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db import utcnow
from backend.records.models import PatientKey

NONCE = 12


class KeyError_(RuntimeError):
    """A data key cannot be unwrapped: unknown or wrong master key."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def parse_key(text: str) -> bytes:
    raw = base64.b64decode(text.strip())
    if len(raw) != 32:
        raise ValueError("a master key is 32 bytes, base64-encoded")
    return raw


def new_master_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass
class Keyring:
    current: bytes
    previous: list[bytes] = field(default_factory=list)

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    def by_id(self, wanted: str) -> bytes:
        for key in [self.current, *self.previous]:
            if key_id(key) == wanted:
                return key
        raise KeyError_(f"master key {wanted} is not configured")

    @classmethod
    def from_config(cls, current: str, previous: Iterable[str] = ()) -> Keyring:
        return cls(parse_key(current), [parse_key(p) for p in previous if p.strip()])


def _aad(patient_id: int) -> bytes:
    return f"patient-key:{patient_id}".encode()


def wrap(keyring: Keyring, patient_id: int, data_key: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(keyring.current).encrypt(nonce, data_key, _aad(patient_id))


def unwrap(master: bytes, patient_id: int, wrapped: bytes) -> bytes:
    return AESGCM(master).decrypt(wrapped[:NONCE], wrapped[NONCE:], _aad(patient_id))


class Vault:
    """Per-session access to patients' data keys (unwrapped once per session and patient)."""

    def __init__(self, session: Session, keyring: Keyring) -> None:
        self.session = session
        self.keyring = keyring
        self._cache: dict[int, bytes] = {}

    def data_key(self, patient_id: int) -> bytes:
        if patient_id in self._cache:
            return self._cache[patient_id]
        row = self.session.get(PatientKey, patient_id)
        if row is None:
            key = AESGCM.generate_key(bit_length=256)
            try:
                # Two first writes for one patient at once (two devices): one key wins, the other reads it.
                with self.session.begin_nested():
                    self.session.add(PatientKey(patient_id=patient_id, wrapped=wrap(self.keyring, patient_id, key),
                                                master_key_id=self.keyring.current_id, created_at=utcnow()))
            except IntegrityError:
                row = self.session.get(PatientKey, patient_id)
                assert row is not None
                key = unwrap(self.keyring.by_id(row.master_key_id), patient_id, row.wrapped)
        else:
            key = unwrap(self.keyring.by_id(row.master_key_id), patient_id, row.wrapped)
        self._cache[patient_id] = key
        return key

    def seal(self, patient_id: int, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + AESGCM(self.data_key(patient_id)).encrypt(nonce, plaintext, context.encode())

    def open(self, patient_id: int, sealed: bytes, context: str) -> bytes:
        return AESGCM(self.data_key(patient_id)).decrypt(sealed[:NONCE], sealed[NONCE:], context.encode())

    def seal_text(self, patient_id: int, text: str, context: str) -> str:
        return base64.b64encode(self.seal(patient_id, text.encode(), context)).decode()

    def open_text(self, patient_id: int, sealed: str, context: str) -> str:
        return self.open(patient_id, base64.b64decode(sealed), context).decode()


def rotate(session: Session, keyring: Keyring, batch: int = 500) -> dict[str, int]:
    """Re-wrap every data key not yet under the current master key. Idempotent; the data is untouched."""
    rewrapped = already = 0
    last = 0
    while True:
        rows = session.scalars(select(PatientKey).where(PatientKey.patient_id > last)
                               .order_by(PatientKey.patient_id).limit(batch)).all()
        if not rows:
            break
        for row in rows:
            last = row.patient_id
            if row.master_key_id == keyring.current_id:
                already += 1
                continue
            key = unwrap(keyring.by_id(row.master_key_id), row.patient_id, row.wrapped)
            row.wrapped = wrap(keyring, row.patient_id, key)
            row.master_key_id = keyring.current_id
            row.rotated_at = utcnow()
            rewrapped += 1
        session.flush()
    return {"rewrapped": rewrapped, "already_current": already}
