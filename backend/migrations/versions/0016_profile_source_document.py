"""profile: an entry read from a document keeps the link to it (implanted devices, dispensed vaccines)

An implanted device read from an operative report or a discharge letter, or a vaccination proposed
from a dispensation, points to the document it came from: the app opens it from the entry, and the
FHIR export says ``derivedFrom``. The document may go (deleted upload, purge): the link is then cleared.

Revision ID: 0016_profile_source_document
Revises: 0006_records_profile
"""
from alembic import op
import sqlalchemy as sa


revision = '0016_profile_source_document'
down_revision = '0006_records_profile'
branch_labels = ('profile_sources',)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('profile_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('document_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_profile_entry_document_id_document'), 'document',
                                    ['document_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index(batch_op.f('ix_profile_entry_document_id'), ['document_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('profile_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_profile_entry_document_id'))
        batch_op.drop_constraint(batch_op.f('fk_profile_entry_document_id_document'), type_='foreignkey')
        batch_op.drop_column('document_id')
