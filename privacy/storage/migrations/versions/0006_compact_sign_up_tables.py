"""Compact sign-up tables on SQLite: WITHOUT ROWID for fields, states and confirmations;
the ledger's sequence number as the rowid; granted consents indexed alone

A rowid table with a text primary key is two B-trees (the rows, and an index for the key),
so a sign-up committed a page of each. Rebuilt WITHOUT ROWID, the rows live in the key's
B-tree; and an INTEGER PRIMARY KEY (rather than BIGINT) is the rowid itself, so the
ledger loses its separate key index. PostgreSQL has neither notion: nothing changes there.

On both databases the index of consent states by (purpose, status) becomes one of granted
states only, by (purpose, granted_at): the nightly expiry is its only reader, and a
sign-up then adds one entry per granted purpose instead of one per purpose.

The tables are rebuilt by copying (SQLite cannot alter them in place). None of them is
referenced by another table, so dropping the old copy cascades nowhere; the ledger's
append-only triggers are dropped for the copy and created again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 17:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

COMPACT_TABLES = ("subject_fields", "consent_states", "confirmations")
LEDGER_TRIGGERS = {
    "UPDATE": "CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events "
              "BEGIN SELECT RAISE(ABORT, 'consent_events is append-only: UPDATE refused'); END",
    "DELETE": "CREATE TRIGGER consent_events_no_delete BEFORE DELETE ON consent_events "
              "BEGIN SELECT RAISE(ABORT, 'consent_events is append-only: DELETE refused'); END",
}


def _rebuild(with_rowid: bool, seq_type: sa.types.TypeEngine) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in COMPACT_TABLES:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_with_rowid": with_rowid}) as batch_op:
            pass
    op.execute("DROP TRIGGER IF EXISTS consent_events_no_update")
    op.execute("DROP TRIGGER IF EXISTS consent_events_no_delete")
    with op.batch_alter_table("consent_events", recreate="always") as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), type_=seq_type,
                              existing_nullable=False, autoincrement=False)
    for create in LEDGER_TRIGGERS.values():
        op.execute(create)


GRANTED = sa.text("status = 'granted'")


def upgrade():
    _rebuild(with_rowid=False, seq_type=sa.Integer())
    op.drop_index('ix_consent_states_purpose_status', table_name='consent_states')
    op.create_index('ix_consent_states_granted', 'consent_states', ['purpose', 'granted_at'], unique=False,
                    sqlite_where=GRANTED, postgresql_where=GRANTED)


def downgrade():
    op.drop_index('ix_consent_states_granted', table_name='consent_states')
    op.create_index('ix_consent_states_purpose_status', 'consent_states', ['purpose', 'status'], unique=False)
    _rebuild(with_rowid=True, seq_type=sa.BigInteger())
