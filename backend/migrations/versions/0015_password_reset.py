"""password reset: one row per patient with the pending code and its throttling counters

The forgotten password (``backend/accounts/reset.py``): the code's keyed hash and expiry, the wrong
attempts, and the requests of the current window, all counted by conditional UPDATEs on this row.

Revision ID: 0015_password_reset
Revises: 0001_foundation
"""
from alembic import op
import sqlalchemy as sa


revision = '0015_password_reset'
down_revision = '0001_foundation'
branch_labels = ('password_reset',)
depends_on = None


def upgrade() -> None:
    op.create_table(
        'password_reset',
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('requests', sa.Integer(), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_password_reset_patient_id_patient'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('patient_id', name=op.f('pk_password_reset')),
    )


def downgrade() -> None:
    op.drop_table('password_reset')
