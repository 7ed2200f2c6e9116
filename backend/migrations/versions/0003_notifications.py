"""notifications: push subscriptions and deliveries, preferences, job claims; delivery state on
notification records and outbox emails

Revision ID: 0003_notifications
Revises: 0002_notification_records
Create Date: 2026-11-22 15:41:27.554800
"""
import secrets

from alembic import op
import sqlalchemy as sa


revision = '0003_notifications'
down_revision = '0002_notification_records'
branch_labels = ('notifications',)
depends_on = None


def upgrade() -> None:
    op.create_table('notification_job_claim',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('item_key', sa.String(length=128), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_notification_job_claim_patient_id_patient'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_job_claim')),
    sa.UniqueConstraint('job', 'item_key', name=op.f('uq_notification_job_claim_job'))
    )
    with op.batch_alter_table('notification_job_claim', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_job_claim_patient_id'), ['patient_id'], unique=False)

    op.create_table('notification_preference',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('push', sa.Boolean(), nullable=False),
    sa.Column('email', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_notification_preference_patient_id_patient'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_preference')),
    sa.UniqueConstraint('patient_id', 'kind', name=op.f('uq_notification_preference_patient_id'))
    )
    op.create_table('push_subscription',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('auth_token_id', sa.Integer(), nullable=False),
    sa.Column('endpoint', sa.String(length=1024), nullable=False),
    sa.Column('endpoint_hash', sa.String(length=64), nullable=False),
    sa.Column('p256dh', sa.String(length=128), nullable=False),
    sa.Column('auth', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['auth_token_id'], ['auth_token.id'], name=op.f('fk_push_subscription_auth_token_id_auth_token'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_push_subscription_patient_id_patient'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_subscription')),
    sa.UniqueConstraint('auth_token_id', name=op.f('uq_push_subscription_auth_token_id')),
    sa.UniqueConstraint('endpoint_hash', name=op.f('uq_push_subscription_endpoint_hash'))
    )
    with op.batch_alter_table('push_subscription', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_subscription_patient_id'), ['patient_id'], unique=False)

    op.create_table('push_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['notification_id'], ['notification.id'], name=op.f('fk_push_delivery_notification_id_notification'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscription_id'], ['push_subscription.id'], name=op.f('fk_push_delivery_subscription_id_push_subscription'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_delivery')),
    sa.UniqueConstraint('notification_id', 'subscription_id', name=op.f('uq_push_delivery_notification_id'))
    )
    with op.batch_alter_table('push_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_push_delivery_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_push_delivery_notification_id'), ['notification_id'], unique=False)

    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('public_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True))
    # Records written before this revision get their opaque id; they count as dispatched (they were shown
    # in the centre already and must not be pushed late).
    notification = sa.table('notification', sa.column('id', sa.Integer()), sa.column('public_id', sa.String()),
                            sa.column('created_at', sa.DateTime(timezone=True)),
                            sa.column('dispatched_at', sa.DateTime(timezone=True)))
    bind = op.get_bind()
    for (row_id,) in bind.execute(sa.select(notification.c.id)).all():
        bind.execute(notification.update().where(notification.c.id == row_id)
                     .values(public_id=secrets.token_urlsafe(16), dispatched_at=notification.c.created_at))
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.alter_column('public_id', existing_type=sa.String(length=32), nullable=False)
        batch_op.create_index('ix_notification_dispatch', ['dispatched_at', 'created_at'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_notification_public_id'), ['public_id'])

    with op.batch_alter_table('outbox_email', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_outbox_email_pending', ['sent_at', 'failed_at', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outbox_email', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_email_pending')
        batch_op.drop_column('last_error')
        batch_op.drop_column('failed_at')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('next_attempt_at')

    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_notification_public_id'), type_='unique')
        batch_op.drop_index('ix_notification_dispatch')
        batch_op.drop_column('dispatched_at')
        batch_op.drop_column('public_id')

    with op.batch_alter_table('push_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_push_delivery_notification_id'))
        batch_op.drop_index('ix_push_delivery_due')

    op.drop_table('push_delivery')
    with op.batch_alter_table('push_subscription', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_push_subscription_patient_id'))

    op.drop_table('push_subscription')
    op.drop_table('notification_preference')
    with op.batch_alter_table('notification_job_claim', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_job_claim_patient_id'))

    op.drop_table('notification_job_claim')
