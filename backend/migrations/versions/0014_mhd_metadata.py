"""IHE MHD: every document's XDS metadata kept as received, and submission sets as resources

- ``document``: the code systems and displays of typeCode, classCode, formatCode; healthcareFacilityTypeCode,
  practiceSettingCode, languageCode, creationTime, serviceStopTime, comments, the SHA-1 hash, entryUUID,
  sourcePatientInfo. ``document_code``: the multi-valued codes (eventCodeList, every confidentialityCode).
- ``submission_set`` + ``submission_set_entry``: what one feeder sent together (ITI-66 Find Document Lists).
- ``agenda_schedule.specialty_system``: a Schedule's specialty keeps its code system.

Documents already in the database (a migration, not a lazily built set):
- ``class_system`` is the XDS classCode OID wherever a class code is set; ``format_system`` is derived from
  the format code (``urn:ihe:…`` codes belong to IHE's ``1.3.6.1.4.1.19376.1.2.3``, ``urn:asip:…`` and
  ``urn:ans:…`` to the ANS TRE_A06 ``1.2.250.1.213.1.1.4.2.282``, as the JDV J10 value set says);
- every document gets an entryUUID;
- submission sets are rebuilt: the documents one professional's ITI-65 bundle deposited share their
  submission time to the microsecond (one ``now`` per bundle), so they become one set again; every other
  document (patient upload, inbox, legacy import) is a set of its own, as new ones are. The SHA-1 of an
  existing document is not known without decrypting it: it stays empty (``attachment.hash`` is then absent).

Revision ID: 0014_mhd_metadata
Revises: 0011_document_released_index, 0003_agenda
"""
from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = '0014_mhd_metadata'
down_revision = ('0011_document_released_index', '0003_agenda')
branch_labels = ('mhd',)
depends_on = None

CLASS_OID = "1.2.250.1.213.1.1.4.1"
IHE_FORMAT_OID = "1.3.6.1.4.1.19376.1.2.3"
ANS_FORMAT_OID = "1.2.250.1.213.1.1.4.2.282"
DICOM_FORMAT_OID = "1.2.840.10008.2.6.1"
# this server's sourceId for the sets it builds itself: an OID under 2.25 (ISO/IEC 9834-8, from a UUID)
CARNET_SOURCE_OID = "2.25.240842069129178467003870417520447186753"

DOCUMENT_COLUMNS = [
    ("type_display", sa.String(length=300)), ("class_system", sa.String(length=64)),
    ("class_display", sa.String(length=300)), ("format_system", sa.String(length=128)),
    ("format_display", sa.String(length=300)), ("facility_type_system", sa.String(length=128)),
    ("facility_type_code", sa.String(length=64)), ("facility_type_display", sa.String(length=300)),
    ("practice_setting_system", sa.String(length=128)), ("practice_setting_code", sa.String(length=64)),
    ("practice_setting_display", sa.String(length=300)), ("language", sa.String(length=35)),
    ("creation_time", sa.DateTime(timezone=True)), ("service_end", sa.DateTime(timezone=True)),
    ("description", sa.Text()), ("sha1", sa.String(length=40)), ("entry_uuid", sa.String(length=64)),
    ("source_patient_info", sa.Text()),
]


def upgrade() -> None:
    with op.batch_alter_table('document', schema=None) as batch_op:
        for name, type_ in DOCUMENT_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    with op.batch_alter_table('agenda_schedule', schema=None) as batch_op:
        batch_op.add_column(sa.Column('specialty_system', sa.String(length=128), nullable=True))

    op.create_table(
        'document_code',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('document_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('system', sa.String(length=128), nullable=True),
        sa.Column('code', sa.String(length=128), nullable=False),
        sa.Column('display', sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(['document_id'], ['document.id'], name=op.f('fk_document_code_document_id_document'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_document_code')))
    with op.batch_alter_table('document_code', schema=None) as batch_op:
        batch_op.create_index('ix_document_code_document', ['document_id', 'kind', 'position'], unique=False)
        batch_op.create_index('ix_document_code_kind_code', ['kind', 'code'], unique=False)

    op.create_table(
        'submission_set',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('unique_id', sa.String(length=128), nullable=False),
        sa.Column('entry_uuid', sa.String(length=64), nullable=False),
        sa.Column('source_id', sa.String(length=128), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('title', sa.String(length=500), nullable=True),
        sa.Column('comments', sa.Text(), nullable=True),
        sa.Column('designation_system', sa.String(length=128), nullable=True),
        sa.Column('designation_code', sa.String(length=64), nullable=True),
        sa.Column('designation_display', sa.String(length=300), nullable=True),
        sa.Column('author_professional_id', sa.Integer(), nullable=True),
        sa.Column('author_rpps', sa.String(length=11), nullable=True),
        sa.Column('author_family', sa.String(length=150), nullable=True),
        sa.Column('author_given', sa.String(length=150), nullable=True),
        sa.Column('author_name', sa.String(length=300), nullable=True),
        sa.Column('author_organisation', sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(['author_professional_id'], ['professional.id'],
                                name=op.f('fk_submission_set_author_professional_id_professional'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_submission_set_patient_id_patient'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_submission_set')),
        sa.UniqueConstraint('patient_id', 'unique_id', name='uq_submission_set_patient_unique_id'))
    with op.batch_alter_table('submission_set', schema=None) as batch_op:
        batch_op.create_index('ix_submission_set_patient_submitted', ['patient_id', 'submitted_at', 'id'],
                              unique=False)

    op.create_table(
        'submission_set_entry',
        sa.Column('document_id', sa.Integer(), nullable=False),
        sa.Column('submission_set_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['document_id'], ['document.id'],
                                name=op.f('fk_submission_set_entry_document_id_document'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['submission_set_id'], ['submission_set.id'],
                                name=op.f('fk_submission_set_entry_submission_set_id_submission_set'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('document_id', name=op.f('pk_submission_set_entry')))
    with op.batch_alter_table('submission_set_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_submission_set_entry_submission_set_id'), ['submission_set_id'],
                              unique=False)

    _backfill()


def _new_oid() -> str:
    return f"2.25.{uuid.uuid4().int}"


def _backfill() -> None:
    bind = op.get_bind()
    document = sa.table('document', sa.column('id'), sa.column('class_code'), sa.column('class_system'),
                        sa.column('format_code'), sa.column('format_system'), sa.column('entry_uuid'),
                        sa.column('patient_id'), sa.column('source'), sa.column('submitted_at'),
                        sa.column('author_professional_id'), sa.column('author_rpps'), sa.column('author_name'),
                        sa.column('author_organisation'), sa.column('type_code'), sa.column('type_system'))
    bind.execute(document.update().where(document.c.class_code.is_not(None)).values(class_system=CLASS_OID))
    for pattern, oid in (("urn:ihe:%", IHE_FORMAT_OID), ("urn:asip:%", ANS_FORMAT_OID), ("urn:ans:%", ANS_FORMAT_OID),
                         ("1.2.840.10008.%", DICOM_FORMAT_OID)):
        bind.execute(document.update().where(document.c.format_code.like(pattern), document.c.format_system.is_(None))
                     .values(format_system=oid))

    submission_set = sa.table(
        'submission_set', sa.column('id'), sa.column('patient_id'), sa.column('unique_id'), sa.column('entry_uuid'),
        sa.column('source_id'), sa.column('source'), sa.column('submitted_at'), sa.column('designation_system'),
        sa.column('designation_code'), sa.column('author_professional_id'), sa.column('author_rpps'),
        sa.column('author_name'), sa.column('author_organisation'))
    entry = sa.table('submission_set_entry', sa.column('document_id'), sa.column('submission_set_id'))
    rows = bind.execute(sa.select(document.c.id, document.c.patient_id, document.c.source, document.c.submitted_at,
                                  document.c.author_professional_id, document.c.author_rpps, document.c.author_name,
                                  document.c.author_organisation, document.c.type_code, document.c.type_system)
                        .order_by(document.c.id)).all()
    groups: dict[tuple[object, ...], list[object]] = {}
    for row in rows:
        key = (row.patient_id, row.source, row.submitted_at) if row.source == "professional" else (row.id,)
        groups.setdefault(key, []).append(row)
    batch: list[dict[str, object]] = []
    uuids: list[dict[str, object]] = []
    for members in groups.values():
        first = members[0]
        batch.append({"patient_id": first.patient_id, "unique_id": _new_oid(), "entry_uuid": f"urn:uuid:{uuid.uuid4()}",
                      "source_id": CARNET_SOURCE_OID, "source": first.source, "submitted_at": first.submitted_at,
                      "designation_system": first.type_system if first.type_code else None,
                      "designation_code": first.type_code, "author_professional_id": first.author_professional_id,
                      "author_rpps": first.author_rpps, "author_name": first.author_name,
                      "author_organisation": first.author_organisation, "_members": [m.id for m in members]})
        uuids += [{"doc_id": m.id, "uuid": f"urn:uuid:{uuid.uuid4()}"} for m in members]
    for start in range(0, len(batch), 500):
        chunk = batch[start:start + 500]
        for item in chunk:
            members = item.pop("_members")
            set_id = bind.execute(submission_set.insert().values(**item).returning(submission_set.c.id)).scalar_one()
            bind.execute(entry.insert(), [{"document_id": m, "submission_set_id": set_id} for m in members])
    if uuids:
        bind.execute(document.update().where(document.c.id == sa.bindparam("doc_id"))
                     .values(entry_uuid=sa.bindparam("uuid")), uuids)


def downgrade() -> None:
    with op.batch_alter_table('submission_set_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_submission_set_entry_submission_set_id'))
    op.drop_table('submission_set_entry')
    with op.batch_alter_table('submission_set', schema=None) as batch_op:
        batch_op.drop_index('ix_submission_set_patient_submitted')
    op.drop_table('submission_set')
    with op.batch_alter_table('document_code', schema=None) as batch_op:
        batch_op.drop_index('ix_document_code_kind_code')
        batch_op.drop_index('ix_document_code_document')
    op.drop_table('document_code')
    with op.batch_alter_table('agenda_schedule', schema=None) as batch_op:
        batch_op.drop_column('specialty_system')
    with op.batch_alter_table('document', schema=None) as batch_op:
        for name, _ in reversed(DOCUMENT_COLUMNS):
            batch_op.drop_column(name)
