"""Benchmark of the legacy import (run: ``.venv/bin/python bench/migration_import.py``).

1. Activation-time import of one 50-document dossier (seconds), as the activation task runs it.
2. Bulk throughput of ``carnet migrate import --workers N`` (dossiers/s).
Each is printed next to its floor measured in the same run: reading the same files and storing the same
bytes through the same store_document (encryption, audit, one transaction per document), without
parsing, mapping or journaling. The ratio is what the migration's own work costs.

Uses the ANS example documents of ../shared (a bench may; the product does not), a fresh SQLite database
(or CARNET_BENCH_DATABASE_URL) and fresh keys. Sizes: CARNET_BENCH_DOCS (50), CARNET_BENCH_DOSSIERS (20),
CARNET_BENCH_WORKERS (2).
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SOURCE = ROOT.parent / "shared" / "fixtures" / "external" / "ans-testcontenucda-3.0"
HOLDER_INS = b"279035121518989"
# documents of the holder PAT-TROIS (INS-NIR test 279035121518989), level 1 and level 3
TEMPLATES = ["AVC-SUNV_2022.01.xml", "BIO-CR-BIO_2024.01_Microbiologie_V2.xml",
             "BIO-TROD_2024.01_COVID-19.xml", "CNAM-HR_2021.01.xml", "DLU-EHPAD-FLUDT_2022.01.xml",
             "DOC_NON_STRUCTURE_CDA-R2-N1.xml", "IMG_CR_IMG_2024.01.xml", "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml",
             "LDL-SES_2022.01.xml", "TLM-CR_2022.01.xml", "VAC-NOTE_2023.01.xml", "VAC_2023.01.xml",
             "eP-MED-DM_2024.01_PosoStruct.xml"]


def nir(first13: str) -> str:
    return first13 + f"{97 - int(first13) % 97:02d}"


def make_dossier(folder: Path, holder: str, count: int, salt: str) -> list[Path]:
    """``count`` distinct documents of ``holder``: the examples with their ids (and INS) made unique."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        name = TEMPLATES[i % len(TEMPLATES)]
        data = (SOURCE / name).read_bytes().replace(HOLDER_INS, holder.encode())
        marker = f"<!-- bench {salt} {i} -->".encode()
        # a distinct CDA id per copy: the id root gets a suffix arc
        head, sep, tail = data.partition(b"<id root=\"")
        root, q, rest = tail.partition(b"\"")
        data = head + sep + root + f".9{i}{abs(hash(salt)) % 10000}".encode() + q + rest + marker
        path = folder / f"{i:03d}-{name}"
        path.write_bytes(data)
        out.append(path)
    return out


def main() -> None:
    n_docs = int(os.environ.get("CARNET_BENCH_DOCS", 50))
    n_dossiers = int(os.environ.get("CARNET_BENCH_DOSSIERS", 20))
    per_dossier = int(os.environ.get("CARNET_BENCH_DOSSIER_DOCS", 10))
    workers = int(os.environ.get("CARNET_BENCH_WORKERS", 2))
    tmp = Path(tempfile.mkdtemp(prefix="carnet-bench-"))
    url = os.environ.get("CARNET_BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'bench.db'}"
    os.environ.update({"CARNET_SECRET_KEY": secrets.token_urlsafe(32),
                       "CARNET_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
                       "CARNET_DATABASE_URL": url, "CARNET_TASK_QUEUE": "immediate",
                       "CARNET_INSTANCE_PATH": str(tmp / "instance")})
    import logging

    logging.disable(logging.INFO)
    from backend import create_app, migrate
    from backend.accounts import service as accounts
    from backend.db import get_db
    from backend.identity import OID_INS_NIR_TEST, InsTraits
    from backend.records.crypto import Vault
    from backend.records.documents.service import DocumentMeta, store_document
    from migration.loader import import_dossier

    migrate.upgrade(url)
    app = create_app()
    factory = get_db(app).session_factory
    keyring = app.extensions["carnet.keyring"]

    def new_patient(number: str) -> int:
        with app.app_context():
            s = factory()
            traits = InsTraits(nir=number, birth_family_name="BENCH", given_names="Test",
                               birth_date=dt.date(1979, 3, 5), sex="F", oid=OID_INS_NIR_TEST)
            patient, _ = accounts.create_patient(s, app.extensions["carnet.account_settings"], traits)
            s.commit()
            pid = patient.id
            s.close()
            return pid

    def floor(pid: int, files: list[Path]) -> None:
        with app.app_context():
            s = factory()
            vault = Vault(s, keyring)
            for f in files:
                data = f.read_bytes()
                meta = DocumentMeta(title=f.name, mime_type="text/xml", unique_id=hashlib.sha256(data).hexdigest())
                store_document(s, vault, pid, data, meta, source="migration", notify_patient=False)
                s.commit()
            s.close()

    legacy = tmp / "legacy"
    # 1. activation-time import of one dossier
    holder = nir("2790351215189")
    files = make_dossier(legacy / holder, holder, n_docs, "a")
    pid = new_patient(holder)
    with app.app_context():
        s = factory()
        t0 = time.perf_counter()
        result = import_dossier(s, keyring, pid, legacy)
        activation = time.perf_counter() - t0
        s.close()
    imported = sum(1 for o in result.outcomes if o.status == "imported")
    others = sorted({f"{o.status}:{o.reason}" for o in result.outcomes if o.status != "imported"})
    floor_pid = new_patient(nir("2790351215190"))
    t0 = time.perf_counter()
    floor(floor_pid, files)
    activation_floor = time.perf_counter() - t0

    # 2. bulk: many dossiers through the operator command
    bulk = tmp / "bulk"
    bulk_files = []
    for i in range(n_dossiers):
        number = nir(f"27903512{i + 10000:05d}"[:13])
        bulk_files.append(make_dossier(bulk / number, number, per_dossier, f"b{i}"))
        new_patient(number)
    t0 = time.perf_counter()
    with app.app_context():
        out = app.test_cli_runner().invoke(args=["migrate", "import", str(bulk), "--workers", str(workers)])
    bulk_seconds = time.perf_counter() - t0
    assert out.exit_code == 0, out.output
    floor_pids = [new_patient(nir(f"27903512{i + 20000:05d}"[:13])) for i in range(n_dossiers)]
    t0 = time.perf_counter()
    for fp, fl in zip(floor_pids, bulk_files):
        floor(fp, fl)
    bulk_floor = time.perf_counter() - t0

    print(f"migration_import: activation import of a {n_docs}-document dossier ({imported} imported): "
          f"{activation:.2f} s; floor (read + store the same bytes, no parsing) {activation_floor:.2f} s; "
          f"ratio {activation / activation_floor:.2f}" + (f" (not imported: {', '.join(others)})" if others else ""))
    print(f"migration_import: bulk {n_dossiers} dossiers x {per_dossier} documents, --workers {workers}: "
          f"{n_dossiers / bulk_seconds:.2f} dossiers/s; floor (one process) {n_dossiers / bulk_floor:.2f} dossiers/s; "
          f"ratio {bulk_seconds / bulk_floor:.2f}")
    print(f"migration_import: database {url.split(':', 1)[0]}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
