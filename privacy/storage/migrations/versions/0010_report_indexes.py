"""The retention report's consent per month: the ledger indexed by time (with purpose and status)

The report counts the ledger's events per purpose, status and month of its period, one
range per month; the index holds every column the count reads, so no event row is read.
Creating an index is no change to the append-only ledger (its triggers refuse UPDATE and
DELETE only). It costs each consent change one more B-tree entry.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 03:40:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_consent_events_recorded_at', 'consent_events', ['recorded_at', 'purpose', 'status'],
                    unique=False)


def downgrade():
    op.drop_index('ix_consent_events_recorded_at', table_name='consent_events')
