"""The tables of the fan-out: connected systems' tasks (``request_tasks``), each try at one
(``task_attempts``), and reconciliations of their opt-in state (``reconcile_runs``).
Part of :mod:`privacy.storage.models`, which imports this module."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from privacy.storage.models import Base, UtcDateTime


class RequestTask(Base):
    """One system's share of a request (this service's own work, or a connected system's),
    or one consent change pushed to a connected system (no request).

    A connected system's task is claimed by a scheduler process with a lease
    (``lease_owner`` until ``lease_until``); a process that dies loses it when the lease
    runs out. ``payload`` is whom to look for and what to change, sealed under the task's
    own key (``wrapped_key``), which is destroyed when the task succeeds or is skipped.
    """

    __tablename__ = "request_tasks"
    __table_args__ = (Index("ix_request_tasks_due", "status", "next_attempt_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("requests.id", ondelete="CASCADE"),
                                                   index=True, nullable=True)
    system: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending|in_progress|succeeded|failed|skipped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    result: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # sealed under the request key
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    subject_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # done|not_found|accepted|soft_deleted
    deadline_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    master_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class TaskAttempt(Base):
    """One try at a connected system's task: when, how long, what came of it. ``excerpt``
    is the start of the system's answer with personal values masked."""

    __tablename__ = "task_attempts"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(36), ForeignKey("request_tasks.id", ondelete="CASCADE"), index=True)
    system: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    result: Mapped[str] = mapped_column(String(16))  # succeeded|retry|failed|skipped|waiting|lost
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    excerpt: Mapped[str | None] = mapped_column(String(300), nullable=True)


class ReconcileRun(Base):
    """One comparison of the connected systems' marketing opt-in state with the ledger
    (``privacy.tasks.reconcile``). ``report`` is JSON of counts and pseudonymous subject
    ids per system: never an e-mail address or any other personal value."""

    __tablename__ = "reconcile_runs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    finished_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    repair: Mapped[bool] = mapped_column(Boolean)
    report: Mapped[str] = mapped_column(Text)
