"""Secrets: opaque tokens, keyed hashes, password hashing (argon2id) and sealing small secrets."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# argon2-cffi's defaults are argon2id with RFC 9106 "low memory" parameters.
_hasher = PasswordHasher()

ACTIVATION_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read from a paper letter
ACTIVATION_CODE_LENGTH = 12


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if not stored_hash:
        # Spend the same time as a real check so that timing does not reveal unknown accounts.
        _dummy_verify()
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _dummy_verify() -> None:
    try:
        _hasher.verify(_DUMMY_HASH, "x")
    except VerificationError:
        pass


def new_token() -> str:
    """An opaque bearer token: 256 random bits."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def keyed_digest(secret_key: str, value: str) -> str:
    return hmac.new(secret_key.encode(), value.encode(), hashlib.sha256).hexdigest()


def new_activation_code() -> str:
    return "".join(secrets.choice(ACTIVATION_ALPHABET) for _ in range(ACTIVATION_CODE_LENGTH))


def normalize_activation_code(raw: str) -> str:
    return "".join(ch for ch in (raw or "").upper() if ch.isalnum())


def new_numeric_code(digits: int = 6) -> str:
    return f"{secrets.randbelow(10 ** digits):0{digits}d}"


def _seal_key(secret_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"carnet-seal-v1", info=b"small-secrets").derive(
        secret_key.encode())


def seal(secret_key: str, plaintext: str) -> str:
    """AES-GCM with a key derived from the app secret, for small secrets such as a TOTP seed."""
    nonce = os.urandom(12)
    data = AESGCM(_seal_key(secret_key)).encrypt(nonce, plaintext.encode(), b"carnet-seal")
    return "v1:" + base64.urlsafe_b64encode(nonce + data).decode()


def unseal(secret_key: str, sealed: str) -> str:
    if not sealed.startswith("v1:"):
        raise ValueError("unknown sealed format")
    raw = base64.urlsafe_b64decode(sealed[3:].encode())
    return AESGCM(_seal_key(secret_key)).decrypt(raw[:12], raw[12:], b"carnet-seal").decode()
