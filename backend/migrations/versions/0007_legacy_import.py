"""legacy DMP import: run, per-item journal, profile conflicts

Revision ID: 0007_legacy_import
Revises: 0003_records
Create Date: 2026-11-22 18:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_legacy_import'
down_revision = '0003_records'
branch_labels = ('legacy',)
depends_on = None


def upgrade() -> None:
    op.create_table('legacy_import_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_legacy_import_run_patient_id_patient'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_legacy_import_run')),
    sa.UniqueConstraint('patient_id', name=op.f('uq_legacy_import_run_patient_id'))
    )
    op.create_table('legacy_import_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=512), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('reason_detail', sa.String(length=300), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('unique_id', sa.String(length=128), nullable=True),
    sa.Column('document_id', sa.Integer(), nullable=True),
    sa.Column('provenance', sa.Text(), nullable=True),
    sa.Column('entries_sealed', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['document.id'], name=op.f('fk_legacy_import_item_document_id_document'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_legacy_import_item_patient_id_patient'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_legacy_import_item')),
    sa.UniqueConstraint('patient_id', 'source', name='uq_legacy_import_item_patient_source')
    )
    with op.batch_alter_table('legacy_import_item', schema=None) as batch_op:
        batch_op.create_index('ix_legacy_import_item_patient_status', ['patient_id', 'status', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('legacy_import_item', schema=None) as batch_op:
        batch_op.drop_index('ix_legacy_import_item_patient_status')
    op.drop_table('legacy_import_item')
    op.drop_table('legacy_import_run')
