"""family space: a minor's legal representatives and an adult's carers

Two tables of links between accounts (``backend/family/models.py``): ``legal_representative`` (child ↔
representative, invited / active / left / ended at majority) and ``carer_link`` (patient ↔ carer, with the
chosen scope, invited / accepted / revoked).

Revision ID: 0018_family
Revises: 0001_foundation
"""
from alembic import op
import sqlalchemy as sa


revision = '0018_family'
down_revision = '0001_foundation'
branch_labels = ('family',)
depends_on = None


def _fk(table: str, column: str, ondelete: str = 'CASCADE') -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], ['patient.id'], name=op.f(f'fk_{table}_{column}_patient'),
                                   ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        'legal_representative',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('child_id', sa.Integer(), nullable=False),
        sa.Column('representative_id', sa.Integer(), nullable=True),
        sa.Column('state', sa.Enum('invited', 'active', 'left', 'ended', name='representationstate',
                                   native_enum=False, length=16), nullable=False),
        sa.Column('invited_by_id', sa.Integer(), nullable=True),
        sa.Column('code_hash', sa.String(length=64), nullable=True),
        sa.Column('code_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        _fk('legal_representative', 'child_id'),
        _fk('legal_representative', 'representative_id'),
        _fk('legal_representative', 'invited_by_id', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_legal_representative')),
        sa.UniqueConstraint('code_hash', name=op.f('uq_legal_representative_code_hash')),
    )
    op.create_index('ix_legal_representative_child_state', 'legal_representative', ['child_id', 'state'])
    op.create_index('ix_legal_representative_representative_state', 'legal_representative',
                    ['representative_id', 'state'])
    op.create_table(
        'carer_link',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('carer_id', sa.Integer(), nullable=True),
        sa.Column('scopes', sa.String(length=64), nullable=False),
        sa.Column('state', sa.Enum('invited', 'accepted', 'revoked', name='carerstate', native_enum=False,
                                   length=16), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=True),
        sa.Column('code_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        _fk('carer_link', 'patient_id'),
        _fk('carer_link', 'carer_id'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_carer_link')),
        sa.UniqueConstraint('code_hash', name=op.f('uq_carer_link_code_hash')),
    )
    op.create_index('ix_carer_link_patient_state', 'carer_link', ['patient_id', 'state'])
    op.create_index('ix_carer_link_carer_state', 'carer_link', ['carer_id', 'state'])


def downgrade() -> None:
    op.drop_index('ix_carer_link_carer_state', table_name='carer_link')
    op.drop_index('ix_carer_link_patient_state', table_name='carer_link')
    op.drop_table('carer_link')
    op.drop_index('ix_legal_representative_representative_state', table_name='legal_representative')
    op.drop_index('ix_legal_representative_child_state', table_name='legal_representative')
    op.drop_table('legal_representative')
