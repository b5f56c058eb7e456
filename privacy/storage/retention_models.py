"""The tables of retention and the scheduler: each claimed run of a scheduled job
(``job_runs``), each retention sweep (``retention_runs``), and what an anonymisation keeps
(``anonymised_records``: non-identifying aggregates, no link to a person). Part of
:mod:`privacy.storage.models`, which imports this module."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from privacy.storage.models import Base, UtcDateTime


class JobRun(Base):
    """One run of a scheduled job at its scheduled time (``tick``). The first scheduler
    process to insert the row runs the job; any other finds it there and does not."""

    __tablename__ = "job_runs"
    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    tick: Mapped[dt.datetime] = mapped_column(UtcDateTime, primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))  # running | ok | failed
    count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class RetentionRun(Base):
    """One retention and minimisation sweep: as of when, by whom, a dry run or not, where it
    got to (``cursor``: the last subject id done, to resume after a crash) and its counts."""

    __tablename__ = "retention_runs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    as_of: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    dry_run: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed
    cursor: Mapped[str | None] = mapped_column(String(36), nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: counts only, no personal data


class AnonymisedRecord(Base):
    """What an anonymisation keeps of a subject: aggregates that identify nobody."""

    __tablename__ = "anonymised_records"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    anonymised_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    birth_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    postal_prefix: Mapped[str | None] = mapped_column(String(3), nullable=True)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    purposes: Mapped[str] = mapped_column(Text)  # JSON: [{"purpose", "days_held"}]
    rule: Mapped[str] = mapped_column(String(64))  # the purpose whose retention rule applied
