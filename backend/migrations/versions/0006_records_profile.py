"""records profile: entries, measures, advance directives (versions), organ donation

Revision ID: 0006_records_profile
Revises: 0003_records
Create Date: 2026-11-22 15:49:24.580233
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_records_profile'
down_revision = '0003_records'
branch_labels = ('records_profile',)
depends_on = None


def upgrade() -> None:
    op.create_table('organ_donation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('author_kind', sa.String(length=16), nullable=False),
    sa.Column('author_professional_id', sa.Integer(), nullable=True),
    sa.Column('author_rpps', sa.String(length=11), nullable=True),
    sa.Column('author_name', sa.String(length=300), nullable=True),
    sa.Column('source_key', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_professional_id'], ['professional.id'], name=op.f('fk_organ_donation_author_professional_id_professional'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_organ_donation_patient_id_patient'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organ_donation'))
    )
    with op.batch_alter_table('organ_donation', schema=None) as batch_op:
        batch_op.create_index('ix_organ_donation_patient', ['patient_id', 'id'], unique=False)

    op.create_table('profile_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('needs_confirmation', sa.Boolean(), nullable=False),
    sa.Column('conflict_group', sa.String(length=64), nullable=True),
    sa.Column('hidden_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('removal_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('removal_reason', sa.Text(), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('author_kind', sa.String(length=16), nullable=False),
    sa.Column('author_professional_id', sa.Integer(), nullable=True),
    sa.Column('author_rpps', sa.String(length=11), nullable=True),
    sa.Column('author_name', sa.String(length=300), nullable=True),
    sa.Column('source_key', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_professional_id'], ['professional.id'], name=op.f('fk_profile_entry_author_professional_id_professional'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_profile_entry_patient_id_patient'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_profile_entry')),
    sa.UniqueConstraint('patient_id', 'kind', 'source_key', name='uq_profile_entry_source_key')
    )
    with op.batch_alter_table('profile_entry', schema=None) as batch_op:
        batch_op.create_index('ix_profile_entry_patient_kind', ['patient_id', 'kind', 'id'], unique=False)

    op.create_table('profile_measure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=24), nullable=False),
    sa.Column('measured_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('removal_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('removal_reason', sa.Text(), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('author_kind', sa.String(length=16), nullable=False),
    sa.Column('author_professional_id', sa.Integer(), nullable=True),
    sa.Column('author_rpps', sa.String(length=11), nullable=True),
    sa.Column('author_name', sa.String(length=300), nullable=True),
    sa.Column('source_key', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_professional_id'], ['professional.id'], name=op.f('fk_profile_measure_author_professional_id_professional'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_profile_measure_patient_id_patient'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_profile_measure')),
    sa.UniqueConstraint('patient_id', 'source_key', name='uq_profile_measure_source_key')
    )
    with op.batch_alter_table('profile_measure', schema=None) as batch_op:
        batch_op.create_index('ix_profile_measure_series', ['patient_id', 'type', 'measured_at', 'id'], unique=False)

    op.create_table('advance_directive',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('context', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('document_id', sa.Integer(), nullable=True),
    sa.Column('withdrawn', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('author_kind', sa.String(length=16), nullable=False),
    sa.Column('author_professional_id', sa.Integer(), nullable=True),
    sa.Column('author_rpps', sa.String(length=11), nullable=True),
    sa.Column('author_name', sa.String(length=300), nullable=True),
    sa.Column('source_key', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_professional_id'], ['professional.id'], name=op.f('fk_advance_directive_author_professional_id_professional'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['document_id'], ['document.id'], name=op.f('fk_advance_directive_document_id_document'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_advance_directive_patient_id_patient'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_advance_directive')),
    sa.UniqueConstraint('patient_id', 'context', 'version', name='uq_advance_directive_version')
    )


def downgrade() -> None:
    op.drop_table('advance_directive')
    with op.batch_alter_table('profile_measure', schema=None) as batch_op:
        batch_op.drop_index('ix_profile_measure_series')

    op.drop_table('profile_measure')
    with op.batch_alter_table('profile_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_profile_entry_patient_kind')

    op.drop_table('profile_entry')
    with op.batch_alter_table('organ_donation', schema=None) as batch_op:
        batch_op.drop_index('ix_organ_donation_patient')

    op.drop_table('organ_donation')
