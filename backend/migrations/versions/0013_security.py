"""security: failed-attempt counters in the database (shared by every web worker)

The throttling of passwords, activation codes and one-time codes moves from the `limits` library's
storage (memory:// per process) into this table: one row per key (a keyed digest), changed by conditional
UPDATEs, so a burst of parallel requests cannot pass more attempts than the limit.

Revision ID: 0013_security
Revises: 0001_foundation
"""
from alembic import op
import sqlalchemy as sa


revision = '0013_security'
down_revision = '0001_foundation'
branch_labels = ('security',)
depends_on = None


def upgrade() -> None:
    op.create_table('throttle_counter',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_throttle_counter'))
    )
    with op.batch_alter_table('throttle_counter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_throttle_counter_window_start'), ['window_start'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('throttle_counter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_throttle_counter_window_start'))
    op.drop_table('throttle_counter')
