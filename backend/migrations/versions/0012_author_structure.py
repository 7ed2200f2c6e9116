"""write policy: the structure of a document's author, and of a professional

Replacing a document (XDS RPLC, FHIR ``relatesTo replaces``) is for its author or a member of the
author's structure (domain.md, "Writes are decided like reads"). The structure is kept as a national
structure identifier (idNat_Struct: "1" + FINESS, "2" + SIREN, "3" + SIRET, "4" + RPPS rang): on the
document as deposited, and on the professional as their identity provider states it. Existing rows keep
NULL: only their author may replace them.

Revision ID: 0012_author_structure
Revises: 0011_document_released_index
"""
from alembic import op
import sqlalchemy as sa


revision = '0012_author_structure'
down_revision = '0011_document_released_index'
branch_labels = ('write_policy',)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.add_column(sa.Column('author_structure_id', sa.String(length=32), nullable=True))
    with op.batch_alter_table('professional', schema=None) as batch_op:
        batch_op.add_column(sa.Column('structure_id', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('professional', schema=None) as batch_op:
        batch_op.drop_column('structure_id')
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.drop_column('author_structure_id')
