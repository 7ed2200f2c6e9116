"""messaging: threads, participants, messages, recipients, attachments, search tokens

Revision ID: 0009_messaging
Revises: 0003_records
Create Date: 2026-11-22 16:23:52.922644
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_messaging'
down_revision = '0003_records'
branch_labels = ('messaging',)
depends_on = None


def upgrade() -> None:
    op.create_table('inbox_thread',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('professional_id', sa.Integer(), nullable=False),
    sa.Column('establishment', sa.String(length=300), nullable=True),
    sa.Column('started_by', sa.String(length=16), nullable=False),
    sa.Column('subject_sealed', sa.Text(), nullable=False),
    sa.Column('replies_allowed', sa.Boolean(), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_message_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_message_id', sa.Integer(), nullable=True),
    sa.Column('last_message_id', sa.Integer(), nullable=True),
    sa.Column('message_count', sa.Integer(), nullable=False),
    sa.Column('attachment_count', sa.Integer(), nullable=False),
    sa.Column('unread_count', sa.Integer(), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('purge_after', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_inbox_thread_patient_id_patient'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['professional_id'], ['professional.id'], name=op.f('fk_inbox_thread_professional_id_professional')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_thread'))
    )
    with op.batch_alter_table('inbox_thread', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_thread_patient_listing', ['patient_id', 'deleted_at', 'archived_at', 'last_message_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbox_thread_professional_id'), ['professional_id'], unique=False)
        batch_op.create_index('ix_inbox_thread_purge_after', ['purge_after'], unique=False)

    op.create_table('inbox_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('thread_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('author_kind', sa.String(length=16), nullable=False),
    sa.Column('author_professional_id', sa.Integer(), nullable=True),
    sa.Column('in_reply_to_id', sa.Integer(), nullable=True),
    sa.Column('reply_all', sa.Boolean(), nullable=False),
    sa.Column('body_sealed', sa.Text(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_professional_id'], ['professional.id'], name=op.f('fk_inbox_message_author_professional_id_professional')),
    sa.ForeignKeyConstraint(['in_reply_to_id'], ['inbox_message.id'], name=op.f('fk_inbox_message_in_reply_to_id_inbox_message'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_inbox_message_patient_id_patient'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['thread_id'], ['inbox_thread.id'], name=op.f('fk_inbox_message_thread_id_inbox_thread'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_message'))
    )
    with op.batch_alter_table('inbox_message', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_message_patient_author', ['patient_id', 'author_professional_id'], unique=False)
        batch_op.create_index('ix_inbox_message_thread', ['thread_id', 'id'], unique=False)

    op.create_table('inbox_participant',
    sa.Column('thread_id', sa.Integer(), nullable=False),
    sa.Column('professional_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['professional_id'], ['professional.id'], name=op.f('fk_inbox_participant_professional_id_professional')),
    sa.ForeignKeyConstraint(['thread_id'], ['inbox_thread.id'], name=op.f('fk_inbox_participant_thread_id_inbox_thread'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('thread_id', 'professional_id', name=op.f('pk_inbox_participant'))
    )
    with op.batch_alter_table('inbox_participant', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_participant_professional', ['professional_id', 'thread_id'], unique=False)

    op.create_table('inbox_search_token',
    sa.Column('thread_id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['thread_id'], ['inbox_thread.id'], name=op.f('fk_inbox_search_token_thread_id_inbox_thread'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('thread_id', 'token', name=op.f('pk_inbox_search_token'))
    )
    with op.batch_alter_table('inbox_search_token', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_search_token_token', ['token', 'thread_id'], unique=False)

    op.create_table('inbox_attachment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('name_sealed', sa.Text(), nullable=False),
    sa.Column('mime_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('source_document_id', sa.Integer(), nullable=True),
    sa.Column('saved_document_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['inbox_message.id'], name=op.f('fk_inbox_attachment_message_id_inbox_message'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_inbox_attachment_patient_id_patient'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['saved_document_id'], ['document.id'], name=op.f('fk_inbox_attachment_saved_document_id_document'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_document_id'], ['document.id'], name=op.f('fk_inbox_attachment_source_document_id_document'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_attachment'))
    )
    with op.batch_alter_table('inbox_attachment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbox_attachment_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbox_attachment_patient_id'), ['patient_id'], unique=False)

    op.create_table('inbox_message_recipient',
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('professional_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['inbox_message.id'], name=op.f('fk_inbox_message_recipient_message_id_inbox_message'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['professional_id'], ['professional.id'], name=op.f('fk_inbox_message_recipient_professional_id_professional')),
    sa.PrimaryKeyConstraint('message_id', 'professional_id', name=op.f('pk_inbox_message_recipient'))
    )
    with op.batch_alter_table('inbox_message_recipient', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_message_recipient_professional', ['professional_id', 'message_id'], unique=False)

    op.create_table('inbox_attachment_content',
    sa.Column('attachment_id', sa.Integer(), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['attachment_id'], ['inbox_attachment.id'], name=op.f('fk_inbox_attachment_content_attachment_id_inbox_attachment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('attachment_id', name=op.f('pk_inbox_attachment_content'))
    )


def downgrade() -> None:
    op.drop_table('inbox_attachment_content')
    with op.batch_alter_table('inbox_message_recipient', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_message_recipient_professional')

    op.drop_table('inbox_message_recipient')
    with op.batch_alter_table('inbox_attachment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbox_attachment_patient_id'))
        batch_op.drop_index(batch_op.f('ix_inbox_attachment_message_id'))

    op.drop_table('inbox_attachment')
    with op.batch_alter_table('inbox_search_token', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_search_token_token')

    op.drop_table('inbox_search_token')
    with op.batch_alter_table('inbox_participant', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_participant_professional')

    op.drop_table('inbox_participant')
    with op.batch_alter_table('inbox_message', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_message_thread')
        batch_op.drop_index('ix_inbox_message_patient_author')

    op.drop_table('inbox_message')
    with op.batch_alter_table('inbox_thread', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_thread_purge_after')
        batch_op.drop_index(batch_op.f('ix_inbox_thread_professional_id'))
        batch_op.drop_index('ix_inbox_thread_patient_listing')

    op.drop_table('inbox_thread')
