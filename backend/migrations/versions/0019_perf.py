"""documents: an index on the replacing document, so ITI-67 finds what a page's documents replaced

ITI-67 shows, for each document of a page, the documents it replaced (``relatesTo``): ``replaced_by_id IN
(the page)``. Without an index on ``replaced_by_id`` PostgreSQL read the whole document table for each
search (16 ms for 35,000 documents, growing with the table). A partial index on the replaced documents
only (few) makes it 20 index probes; the foreign key's ``ON DELETE SET NULL`` uses it too.

Revision ID: 0019_perf
Revises: 0003_records (the column it indexes); a branch of its own, so that the blob store's
revisions stay one line (``blobs@-1`` is the move of the bytes)
"""
from alembic import op
import sqlalchemy as sa


revision = '0019_perf'
down_revision = '0003_records'
branch_labels = ('perf',)
depends_on = None

REPLACED = sa.text("replaced_by_id IS NOT NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # a large table: build the index without blocking writes (docs/deploy.md, "Schema migrations")
        with op.get_context().autocommit_block():
            op.create_index('ix_document_replaced_by', 'document', ['replaced_by_id'], unique=False,
                            postgresql_where=REPLACED, postgresql_concurrently=True, if_not_exists=True)
        return
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.create_index('ix_document_replaced_by', ['replaced_by_id'], unique=False, sqlite_where=REPLACED)


def downgrade() -> None:
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.drop_index('ix_document_replaced_by')
