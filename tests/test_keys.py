"""Encryption at rest: per-patient data keys wrapped by the master key; rotation re-wraps them."""
import base64
import json
import os

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select

from backend.records.crypto import Keyring, Vault, key_id, rotate
from backend.records.models import PatientKey
from tests.helpers import create_patient


def test_content_is_sealed_per_patient_and_bound_to_its_place(app, db):
    a = create_patient(app).patient_id
    vault = Vault(db, app.extensions["carnet.keyring"])
    sealed = vault.seal(a, b"compte rendu", "document:1")
    assert b"compte rendu" not in sealed
    assert vault.open(a, sealed, "document:1") == b"compte rendu"
    with pytest.raises(InvalidTag):
        vault.open(a, sealed, "document:2")  # moved to another row: refused
    db.commit()
    stored = db.get(PatientKey, a)
    assert stored.master_key_id == app.extensions["carnet.keyring"].current_id


def test_rotation_rewraps_every_key_and_data_stays_readable(app, db, runner):
    old = app.extensions["carnet.keyring"]
    ids = [create_patient(app).patient_id]
    vault = Vault(db, old)
    sealed = vault.seal(ids[0], b"allergie", "profile:1")
    db.commit()
    new_key = base64.b64encode(os.urandom(32)).decode()
    app.extensions["carnet.keyring"] = Keyring.from_config(new_key, [base64.b64encode(old.current).decode()])
    try:
        out = json.loads(runner.invoke(args=["keys", "rotate"]).output)
        assert out == {"master_key_id": key_id(base64.b64decode(new_key)), "rewrapped": 1, "already_current": 0}
        db.expire_all()
        assert db.scalar(select(PatientKey.master_key_id)) == key_id(base64.b64decode(new_key))
        # readable with the new key alone
        assert Vault(db, Keyring.from_config(new_key)).open(ids[0], sealed, "profile:1") == b"allergie"
        again = json.loads(runner.invoke(args=["keys", "rotate"]).output)
        assert again["rewrapped"] == 0 and again["already_current"] == 1
        assert rotate(db, Keyring.from_config(new_key)) == {"rewrapped": 0, "already_current": 1}
    finally:
        app.extensions["carnet.keyring"] = old


def test_keys_new_prints_a_usable_key(runner):
    key = runner.invoke(args=["keys", "new"]).output.strip()
    assert len(base64.b64decode(key)) == 32
