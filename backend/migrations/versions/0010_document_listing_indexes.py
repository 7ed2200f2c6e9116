"""documents: partial listing indexes (live documents, in page order, covering the counts)

The documents page (newest first) and ITI-67 (by id) read a page in index order and stop; the old
index put ``deleted_at`` (always tested with IS NULL) before the sort key, so PostgreSQL read and sorted
every document of the record for each page.

Revision ID: 0010_document_listing_indexes
Revises: 0003_records
"""
from alembic import op
import sqlalchemy as sa


revision = '0010_document_listing_indexes'
down_revision = '0003_records'
branch_labels = ('records_listing',)
depends_on = None

LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.create_index('ix_document_patient_submitted', ['patient_id', 'submitted_at', 'id'], unique=False,
                              postgresql_where=LIVE, sqlite_where=LIVE,
                              postgresql_include=['category', 'invisible_patient', 'released_at', 'replaced_by_id'])
        batch_op.create_index('ix_document_patient_id', ['patient_id', 'id'], unique=False,
                              postgresql_where=LIVE, sqlite_where=LIVE,
                              postgresql_include=['masked', 'author_professional_id', 'replaced_by_id'])
        batch_op.drop_index('ix_document_patient_listing')


def downgrade() -> None:
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.create_index('ix_document_patient_listing', ['patient_id', 'deleted_at', 'submitted_at', 'id'],
                              unique=False)
        batch_op.drop_index('ix_document_patient_id')
        batch_op.drop_index('ix_document_patient_submitted')
