"""The consent ledger as 64 hash chains (shards), each with its own head

Before, every consent event was chained after the one before it under one head row
(``consent``), locked by every append: on PostgreSQL every sign-up waited for the one
before it. From here on a subject's events go to shard SHA-256(subject id) mod 64, whose
head ``consent/NN`` alone is locked (:mod:`privacy.ledger`).

No table changes. The entries already chained stay the legacy chain, frozen at its
head's seq (``base``, 0 for an empty or new database; the ``consent`` head is created at
(0, genesis) when missing so that base is always stored). Shard k's entries will take seq
base + k + 1 + 64 * i; its head starts at (base + k + 1 - 64, genesis): the next seq is
always the head's + 64, and the first entry links to the all-zero genesis.

Downgrading is only possible while no shard has an entry (the shards cannot be merged
back into one chain without rewriting append-only rows).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 04:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

SHARDS = 64  # fixed for good: privacy.storage.repositories.ledger.SHARDS
GENESIS = "0" * 64
HEADS = sa.table("chain_heads", sa.column("name", sa.String), sa.column("seq", sa.BigInteger),
                 sa.column("hash", sa.String))


def _shard_names():
    return [f"consent/{k:02d}" for k in range(SHARDS)]


def upgrade():
    conn = op.get_bind()
    legacy = conn.execute(sa.select(HEADS.c.seq).where(HEADS.c.name == "consent")).first()
    if legacy is None:
        conn.execute(HEADS.insert().values(name="consent", seq=0, hash=GENESIS))
        base = 0
    else:
        base = int(legacy.seq)
    # A head that exists already was made by the application as this migration makes it
    # (code newer than the schema appends to a shard whose head is missing): it stays.
    present = set(conn.execute(sa.select(HEADS.c.name).where(HEADS.c.name.in_(_shard_names()))).scalars())
    missing = [{"name": name, "seq": base + k + 1 - SHARDS, "hash": GENESIS}
               for k, name in enumerate(_shard_names()) if name not in present]
    if missing:
        conn.execute(HEADS.insert(), missing)


def downgrade():
    conn = op.get_bind()
    used = conn.execute(sa.select(sa.func.count()).select_from(HEADS).where(
        HEADS.c.name.in_(_shard_names()), HEADS.c.hash != GENESIS)).scalar_one()
    if used:
        raise RuntimeError(f"{used} ledger shards hold entries: they cannot be merged back into one chain")
    conn.execute(HEADS.delete().where(HEADS.c.name.in_(_shard_names())))
