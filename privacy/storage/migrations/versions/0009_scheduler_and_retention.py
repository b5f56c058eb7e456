"""The scheduler's claimed job runs, retention sweeps, and what anonymisation keeps

``job_runs``: one row per job and scheduled time, inserted by the scheduler process that
runs it (``ON CONFLICT DO NOTHING``: a second process finds it and skips the run).
``retention_runs``: each sweep, where it got to (to resume after a crash) and its counts.
``anonymised_records``: the non-identifying aggregates an anonymisation keeps.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 02:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('job_runs',
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('tick', sa.DateTime(timezone=True), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('count', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('job', 'tick', name=op.f('pk_job_runs'))
    )
    op.create_table('retention_runs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('cursor', sa.String(length=36), nullable=True),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_runs'))
    )
    with op.batch_alter_table('retention_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retention_runs_started_at'), ['started_at'], unique=False)
    op.create_table('anonymised_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('anonymised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('birth_year', sa.Integer(), nullable=True),
    sa.Column('postal_prefix', sa.String(length=3), nullable=True),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('purposes', sa.Text(), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_anonymised_records'))
    )
    with op.batch_alter_table('anonymised_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_anonymised_records_anonymised_at'), ['anonymised_at'], unique=False)


def downgrade():
    with op.batch_alter_table('anonymised_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_anonymised_records_anonymised_at'))
    op.drop_table('anonymised_records')
    with op.batch_alter_table('retention_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retention_runs_started_at'))
    op.drop_table('retention_runs')
    op.drop_table('job_runs')
