"""Data-subject requests: requests, tokens, tasks, packages, held fields, suppressions; request mails in the outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 12:18:38.516973

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():

    op.create_table('held_fields',
    sa.Column('subject_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('hold', sa.String(length=64), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('key_name', sa.String(length=64), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('subject_id', 'name', name=op.f('pk_held_fields'))
    )
    with op.batch_alter_table('held_fields', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_held_fields_until'), ['until'], unique=False)

    op.create_table('requests',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('email_index', sa.LargeBinary(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=36), nullable=True),
    sa.Column('wrapped_key', sa.LargeBinary(), nullable=True),
    sa.Column('master_key_id', sa.String(length=32), nullable=True),
    sa.Column('sealed', sa.LargeBinary(), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('extended_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_requests'))
    )
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_requests_due_at'), ['due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_requests_email_index'), ['email_index'], unique=False)
        batch_op.create_index(batch_op.f('ix_requests_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_requests_subject_id'), ['subject_id'], unique=False)

    op.create_table('suppressions',
    sa.Column('email_index', sa.LargeBinary(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('email_index', name=op.f('pk_suppressions'))
    )
    op.create_table('packages',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('file_name', sa.String(length=128), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_packages_request_id_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_packages')),
    sa.UniqueConstraint('request_id', name=op.f('uq_packages_request_id'))
    )
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_packages_expires_at'), ['expires_at'], unique=False)

    op.create_table('request_tasks',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('system', sa.String(length=64), nullable=False),
    sa.Column('operation', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_request_tasks_request_id_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_tasks'))
    )
    with op.batch_alter_table('request_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_request_tasks_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_request_tasks_status'), ['status'], unique=False)

    op.create_table('request_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('uses_left', sa.Integer(), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_request_tokens_request_id_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_request_tokens'))
    )
    with op.batch_alter_table('request_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_request_tokens_request_id'), ['request_id'], unique=False)

    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_target'), ['target'], unique=False)

    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=36), nullable=True))
        batch_op.alter_column('subject_id',
               existing_type=sa.VARCHAR(length=36),
               nullable=True)
        batch_op.create_foreign_key(batch_op.f('fk_mail_outbox_request_id_requests'), 'requests', ['request_id'], ['id'], ondelete='CASCADE')




def downgrade():

    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_mail_outbox_request_id_requests'), type_='foreignkey')
        batch_op.alter_column('subject_id',
               existing_type=sa.VARCHAR(length=36),
               nullable=False)
        batch_op.drop_column('request_id')

    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_target'))

    with op.batch_alter_table('request_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_tokens_request_id'))

    op.drop_table('request_tokens')
    with op.batch_alter_table('request_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_tasks_status'))
        batch_op.drop_index(batch_op.f('ix_request_tasks_request_id'))

    op.drop_table('request_tasks')
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_packages_expires_at'))

    op.drop_table('packages')
    op.drop_table('suppressions')
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_requests_subject_id'))
        batch_op.drop_index(batch_op.f('ix_requests_status'))
        batch_op.drop_index(batch_op.f('ix_requests_email_index'))
        batch_op.drop_index(batch_op.f('ix_requests_due_at'))

    op.drop_table('requests')
    with op.batch_alter_table('held_fields', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_held_fields_until'))

    op.drop_table('held_fields')

