"""insurer: the Assurance Maladie as a system actor with its own credentials (it feeds, it reads nothing)

Revision ID: 0016a_insurer
Revises: 0001_foundation
"""
from alembic import op
import sqlalchemy as sa


revision = '0016a_insurer'
down_revision = '0001_foundation'
branch_labels = ('insurer',)
depends_on = None


def upgrade() -> None:
    op.create_table('insurer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('organisation_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_insurer')),
    sa.UniqueConstraint('code', name=op.f('uq_insurer_code'))
    )
    op.create_table('insurer_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('insurer_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['insurer_id'], ['insurer.id'], name=op.f('fk_insurer_token_insurer_id_insurer'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_insurer_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_insurer_token_token_hash'))
    )
    with op.batch_alter_table('insurer_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_insurer_token_insurer_id'), ['insurer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('insurer_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_insurer_token_insurer_id'))
    op.drop_table('insurer_token')
    op.drop_table('insurer')
