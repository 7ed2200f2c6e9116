"""The access tests' builders (tests/world.py) build what they say."""
from __future__ import annotations

from backend.accounts.models import AccountState
from backend.records.crypto import Vault
from tests.helpers import sealed_document
from tests.world import make_doc, make_patient, make_pro, nir_of, rpps_of, sentinel_content


def test_builders_make_distinct_identities(app, db):
    assert len({rpps_of(i) for i in range(50)}) == 50 and all(len(rpps_of(i)) == 11 for i in range(50))
    assert len({nir_of(i) for i in range(50)}) == 50
    patient = make_patient(app, db, 1)
    pro, token = make_pro(db, 1, "Curie", "Marie")
    doc = make_doc(app, db, patient.id, "a", author=pro, masked=True)
    db.commit()
    assert patient.state == AccountState.ACTIVE and token and doc.title == f"TITLE-a-{patient.id}"
    vault = Vault(db, app.extensions["carnet.keyring"])
    sealed = sealed_document(db, doc.id)
    assert vault.open(patient.id, sealed, f"document:{doc.id}") == sentinel_content("a", patient.id)
