"""Fan-out to connected systems: leased, sealed tasks and their attempts

``request_tasks`` also holds consent changes pushed to connected systems (no request),
so ``request_id`` may be empty. A task is claimed with a lease (``lease_owner``,
``lease_until``), has a deadline, reports what the system did (``outcome``), and carries
whom to look for sealed under its own key (``wrapped_key``, ``payload``). Every try is a
row of ``task_attempts``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 01:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

def upgrade():
    with op.batch_alter_table('request_tasks', schema=None) as batch_op:
        batch_op.alter_column('request_id', existing_type=sa.String(length=36), nullable=True)
        batch_op.add_column(sa.Column('subject_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('outcome', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('wrapped_key', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('master_key_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('payload', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_request_tasks_subject_id'), ['subject_id'], unique=False)
        batch_op.create_index('ix_request_tasks_due', ['status', 'next_attempt_at'], unique=False)

    op.create_table('task_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=False),
    sa.Column('system', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('excerpt', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['task_id'], ['request_tasks.id'], name=op.f('fk_task_attempts_task_id_request_tasks'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_attempts'))
    )
    with op.batch_alter_table('task_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_attempts_task_id'), ['task_id'], unique=False)

def downgrade():
    with op.batch_alter_table('task_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_attempts_task_id'))
    op.drop_table('task_attempts')
    op.execute("DELETE FROM request_tasks WHERE request_id IS NULL")
    with op.batch_alter_table('request_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_request_tasks_due')
        batch_op.drop_index(batch_op.f('ix_request_tasks_subject_id'))
        for name in ('finished_at', 'payload', 'master_key_id', 'wrapped_key', 'lease_until', 'lease_owner',
                     'deadline_at', 'outcome', 'subject_id'):
            batch_op.drop_column(name)
        batch_op.alter_column('request_id', existing_type=sa.String(length=36), nullable=False)
