"""inbox: attachment bytes leave the database for the blob store

As ``0017_document_blobs`` for documents: each row of ``inbox_attachment_content`` (sealed under the
patient's key, AAD ``inbox-attachment:<id>``) becomes the object ``blobs.attachment_key(id)`` of the
configured store, unchanged, in committed batches (resumable), then the table is dropped.

Revision ID: 0017a_attachment_blobs
Revises: 0009_messaging
"""
from alembic import op
import sqlalchemy as sa

from backend import blobs


revision = '0017a_attachment_blobs'
down_revision = '0009_messaging'
branch_labels = ('blobs_inbox',)
depends_on = None

TABLE = dict(table="inbox_attachment_content", id_column="attachment_id", kind="attachments")


def upgrade() -> None:
    conn = op.get_bind()
    if not sa.inspect(conn).has_table("inbox_attachment_content"):
        return
    store = blobs.migration_store()
    blobs.move_rows_into_store(conn, store, **TABLE)
    blobs.move_remaining_locked(conn, store, **TABLE)
    op.drop_table('inbox_attachment_content')


def downgrade() -> None:
    op.create_table('inbox_attachment_content',
    sa.Column('attachment_id', sa.Integer(), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['attachment_id'], ['inbox_attachment.id'], name=op.f('fk_inbox_attachment_content_attachment_id_inbox_attachment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('attachment_id', name=op.f('pk_inbox_attachment_content'))
    )
    blobs.copy_store_into_rows(op.get_bind(), blobs.migration_store(), source_table="inbox_attachment", **TABLE)
