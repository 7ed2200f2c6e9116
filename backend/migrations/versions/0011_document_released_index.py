"""documents: an index on the release time, so the home screen reads only the recent documents

The home screen counts and shows the documents others added in the last 30 days ("new" from their
arrival, or from their release for an INVISIBLE_PATIENT document). The query now bounds its rows with
``submitted_at >= since OR released_at >= since``: a range of ``ix_document_patient_submitted`` and one of
this partial index (released documents only, few), instead of reading every document of the record.

Revision ID: 0011_document_released_index
Revises: 0010_document_listing_indexes
"""
from alembic import op
import sqlalchemy as sa


revision = '0011_document_released_index'
down_revision = '0010_document_listing_indexes'
branch_labels = None
depends_on = None

RELEASED = sa.text("deleted_at IS NULL AND released_at IS NOT NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # a large table: build the index without blocking writes (docs/deploy.md, "Schema migrations")
        with op.get_context().autocommit_block():
            op.create_index('ix_document_patient_released', 'document', ['patient_id', 'released_at'], unique=False,
                            postgresql_where=RELEASED, postgresql_concurrently=True, if_not_exists=True)
        return
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.create_index('ix_document_patient_released', ['patient_id', 'released_at'], unique=False,
                              sqlite_where=RELEASED)


def downgrade() -> None:
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.drop_index('ix_document_patient_released')
