"""documents: the original bytes leave the database for the blob store

Every row of ``document_content`` (the sealed bytes, AES-GCM under the patient's key, AAD
``document:<id>``) becomes one object of the configured blob store under ``blobs.document_key(id)``,
unchanged (nothing is decrypted), then the table is dropped. ``carnet db upgrade`` gives the migration
the store the app is configured with (CARNET_BLOB_STORE: a directory or an S3 bucket).

Resumable: rows are moved in batches, each committed once its objects are durable in the store, so a
run that stops (killed, store down) leaves the moved ones in the store and the rest in the table; the
next run goes on. The table is dropped in a last transaction that holds it locked (PostgreSQL) after
moving what was written meanwhile. Older web workers still running read ``document_content``: run this
one with them stopped (docs/deploy.md, "Schema migrations").

Revision ID: 0017_document_blobs
Revises: 0003_records
"""
from alembic import op
import sqlalchemy as sa

from backend import blobs


revision = '0017_document_blobs'
down_revision = '0003_records'
branch_labels = ('blobs',)
depends_on = None

TABLE = dict(table="document_content", id_column="document_id", kind="documents")


def upgrade() -> None:
    conn = op.get_bind()
    if not sa.inspect(conn).has_table("document_content"):
        return
    store = blobs.migration_store()
    blobs.move_rows_into_store(conn, store, **TABLE)
    blobs.move_remaining_locked(conn, store, **TABLE)
    op.drop_table('document_content')


def downgrade() -> None:
    op.create_table('document_content',
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['document.id'], name=op.f('fk_document_content_document_id_document'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('document_id', name=op.f('pk_document_content'))
    )
    blobs.copy_store_into_rows(op.get_bind(), blobs.migration_store(), source_table="document", **TABLE)
