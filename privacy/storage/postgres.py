"""PostgreSQL connections: a pooled connection is checked when it is taken from the pool,
without a round trip to the server. Nothing here applies to SQLite.

SQLAlchemy's ``pool_pre_ping`` sends a statement and waits for the answer at every
checkout: one of a sign-up's four round trips, and about a tenth of a gunicorn worker's
CPU under load. What it guards against (the server restarted, the backend was terminated,
an idle connection was closed by the server or a pooler) always reaches the client as the
server's closing message and the end of the socket, and those wait, readable, in the
socket of a connection that sits idle in the pool. So a checkout asks the kernel instead
(a ``poll`` with no wait): a connection that psycopg already knows is closed or broken, or
whose socket has anything to read, is thrown away and the pool hands out another one (a
fresh connection when none is left). An idle connection has nothing to read otherwise:
this service does not ``LISTEN``; the rare parameter report after a configuration reload
costs a reconnect.

What no client check can see is a peer that vanished without a word (a cable cut between
the two machines): the pre-ping would hang in that case too, until TCP gives up.
"""
from __future__ import annotations

import select
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError


def checked_at_checkout(url: str) -> bool:
    """Whether an engine on ``url`` gets the checkout check of :func:`check_at_checkout`
    (PostgreSQL through psycopg); other server databases keep SQLAlchemy's pre-ping."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg"


def connection_is_dead(dbapi_connection: Any) -> bool:
    """Whether a psycopg connection idle in the pool can no longer be used."""
    if dbapi_connection.closed or getattr(dbapi_connection, "broken", False):
        return True
    poller = select.poll()
    poller.register(dbapi_connection.pgconn.socket, select.POLLIN | select.POLLPRI)  # hang-ups are always reported
    return bool(poller.poll(0))


def check_at_checkout(engine: Engine) -> None:
    """Check every connection taken from ``engine``'s pool (a psycopg engine; others are left alone)."""
    if not checked_at_checkout(engine.url.render_as_string()):
        return

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if connection_is_dead(dbapi_connection):
            raise DisconnectionError("the connection was closed while it was in the pool")
