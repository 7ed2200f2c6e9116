"""The bytes of a document: sealed with the patient's key (AES-GCM, bound to ``document:<id>``), kept in
the blob store (``backend.blobs``), checked against the recorded sha256 on every read. Below
``records.documents`` (which stores and lists documents) so that the profile's readers of documents
(``profile/documents.py``, ``profile/derived.py``) and the exports reach the bytes without importing it."""
from __future__ import annotations

import hashlib
import logging

from cryptography.exceptions import InvalidTag
from sqlalchemy.orm import Session

from backend import blobs
from backend.records.crypto import Vault
from backend.records.documents.models import Document

log = logging.getLogger(__name__)


class ContentIntegrityError(RuntimeError):
    """Stored bytes no longer match their recorded hash."""


def content_context(document_id: int) -> str:
    """The AAD a document's bytes are sealed under: they open only as this document's."""
    return f"document:{document_id}"


def write_content(session: Session, vault: Vault, doc: Document, content: bytes) -> None:
    """Seal the bytes of a flushed document with the patient's key and put them in the blob store. Called
    before the transaction commits: a committed row always has its object (an object whose transaction
    rolls back is an orphan the sweep removes)."""
    sealed = vault.seal(doc.patient_id, content, content_context(doc.id))
    blobs.of(session).put(blobs.document_key(doc.id), sealed)


def read_content(session: Session, vault: Vault, doc: Document) -> bytes:
    """The original bytes, from the blob store, decrypted and checked against the recorded sha256.
    A missing object, one that does not open or does not match is an error: never served."""
    try:
        sealed = blobs.of(session).get(blobs.document_key(doc.id))
    except blobs.BlobNotFound:
        log.error("document %s has no content in the blob store", doc.id)
        raise ContentIntegrityError(f"document {doc.id} has no content") from None
    try:
        content = vault.open(doc.patient_id, sealed, content_context(doc.id))
    except InvalidTag:
        log.error("document %s content does not open under its key", doc.id)
        raise ContentIntegrityError(f"document {doc.id} does not open") from None
    if hashlib.sha256(content).hexdigest() != doc.sha256:
        log.error("document %s content does not match its sha256", doc.id)
        raise ContentIntegrityError(f"document {doc.id} does not match its hash")
    return content
