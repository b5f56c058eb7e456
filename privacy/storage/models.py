"""Tables of the service. Personal values only ever appear here as ciphertext."""
from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Every table of the service, on one ``MetaData`` (the migrations compare against it)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    __table__: ClassVar[Table]  # every model here is a plain table (statements are built on it)


COMPACT: dict[str, Any] = {"sqlite_with_rowid": False}
"""Tables whose rows live in their primary key's B-tree on SQLite (``WITHOUT ROWID``):
small rows looked up by that key, written on every sign-up. A rowid table keeps a second
B-tree for the key, one more page each sign-up commits. Other databases ignore it."""
GRANTED = text("status = 'granted'")
LEDGER_SEQ = BigInteger().with_variant(Integer(), "sqlite")
"""On SQLite an ``INTEGER PRIMARY KEY`` is the rowid itself; ``BIGINT`` would get an index
of its own (the same 64-bit range either way)."""


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; pass aware UTC times")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Subject(Base):
    """A data subject: a pseudonymous id, the blind index of the e-mail, a wrapped data key."""

    __tablename__ = "subjects"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email_index: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # No index on master_key_id: rotation walks the primary key instead, and every index
    # is one more B-tree page that each sign-up's commit writes.
    master_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    last_activity_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    shredded_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class SubjectField(Base):
    """One personal field of a subject, AES-GCM ciphertext under the subject's data key."""

    __tablename__ = "subject_fields"
    __table_args__ = (COMPACT,)
    subject_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("subjects.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class MasterKey(Base):
    """Fingerprints of master keys this database has known; only one is active."""

    __tablename__ = "master_keys"
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # active | rotating | retired
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class KeyringEntry(Base):
    """Service-wide secrets (blind-index root, receipt signing key), wrapped by the master key."""

    __tablename__ = "keyring"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(32))
    public: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class Purpose(Base):
    """A purpose as in the policy file; ``origin`` tells whether the file or the API set it."""

    __tablename__ = "purposes"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    definition: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(8))  # file | api
    file_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class NoticeVersion(Base):
    """Every notice text ever shown for a purpose, with its hash."""

    __tablename__ = "notice_versions"
    __table_args__ = (UniqueConstraint("purpose_code", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    purpose_code: Mapped[str] = mapped_column(String(64), ForeignKey("purposes.code"))
    version: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class ChainHead(Base):
    """The last sequence number and hash of a hash chain; locked to append."""

    __tablename__ = "chain_heads"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class ConsentEvent(Base):
    """The consent ledger: append-only and hash-chained. No foreign key: it outlives erasure."""

    __tablename__ = "consent_events"
    # By time, with what the retention report counts per month (purpose, status): a range
    # per month read from the index alone.
    __table_args__ = (Index("ix_consent_events_subject", "subject_id", "seq"),
                      Index("ix_consent_events_recorded_at", "recorded_at", "purpose", "status"))
    seq: Mapped[int] = mapped_column(LEDGER_SEQ, primary_key=True, autoincrement=False)
    subject_id: Mapped[str] = mapped_column(String(36))
    purpose: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    notice_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    text_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ConsentState(Base):
    """Current state per subject and purpose, written in the same transaction as the event."""

    __tablename__ = "consent_states"
    # Only granted consents are indexed, by purpose and time: what the nightly expiry looks
    # for. A sign-up adds one entry per granted purpose, at the right-hand edge (its time is
    # the newest), instead of one per purpose in each (purpose, status) group.
    __table_args__ = (Index("ix_consent_states_granted", "purpose", "granted_at", sqlite_where=GRANTED,
                            postgresql_where=GRANTED), COMPACT)
    subject_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("subjects.id", ondelete="CASCADE"), primary_key=True
    )
    purpose: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    notice_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    granted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    event_seq: Mapped[int] = mapped_column(BigInteger)


class AuditEntry(Base):
    """Append-only, hash-chained log of admin and officer actions (no personal values)."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    details: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ApiKey(Base):
    """An API key: only the SHA-256 of the token is kept."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class IdempotencyRecord(Base):
    """The stored answer to a request sent with an ``Idempotency-Key``."""

    __tablename__ = "idempotency_keys"
    api_key_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)


class Confirmation(Base):
    """A used double opt-in link, under the hash of its token, kept until the link expires.

    A link says itself what it confirms (:mod:`privacy.consent.confirm_links`), so a sign-up stores
    nothing; a row is written when the link is used, and refuses a second use. Links mailed
    before that format had their row written at sign-up (``used_at`` empty until used).
    """

    __tablename__ = "confirmations"
    __table_args__ = (COMPACT,)
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Unindexed on purpose: the table stays small (expired links are purged), so the rare
    # cascade from an erased subject scans it.
    subject_id: Mapped[str] = mapped_column(String(36), ForeignKey("subjects.id", ondelete="CASCADE"))
    purposes: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Receipt(Base):
    """A signed consent receipt as handed out, from before receipts stopped being stored.

    A receipt is the subject's copy: it proves itself with the published key
    (``GET /v1/receipts/keys``), and what it states is in the hash-chained ledger, the
    controller's record (its ``piiPrincipalId`` and ``recorded_at`` find the recording's events).
    Storing a 3.5 KB copy of each, which nothing read, was a fifth of what a sign-up wrote.
    The receipts stored before then are kept (pseudonymous: no personal values).
    """

    __tablename__ = "receipts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(36))
    jws: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class OutboxMail(Base):
    """A mail waiting to be sent, sealed under its subject's data key.

    Shredding the subject's key makes a queued mail unreadable, and deleting the subject
    deletes it: an erased person is not mailed. Sent mails are deleted.
    """

    __tablename__ = "mail_outbox"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Unindexed: sent mails are deleted, so the table holds only what is due or retrying.
    # A mail belongs to a subject (sealed under its data key) or to a data-subject request
    # (sealed under the request's key: the person may not be a known subject), or, with
    # neither, to the service itself (a mail to its officers, under the service's own key).
    subject_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("subjects.id", ondelete="CASCADE"), nullable=True)
    request_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("requests.id", ondelete="CASCADE"), nullable=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)


class DataRequest(Base):
    """A data-subject request (Art. 15-18, 20, 21). Its history is the audit log (target = id).

    What the customer gave (e-mail, changes, purposes) is sealed under the request's own
    data key: the person may be unknown, and the request outlives an erased subject.
    """

    __tablename__ = "requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), index=True)
    email_index: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    subject_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    master_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    language: Mapped[str] = mapped_column(String(8))
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    extended_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    verified_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class RequestToken(Base):
    """A mailed link's token, stored only as its SHA-256: verification (single use) or download."""

    __tablename__ = "request_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), ForeignKey("requests.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # verify | download
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    uses_left: Mapped[int] = mapped_column(Integer)
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ExportPackage(Base):
    """An access or portability package: an encrypted zip under the instance folder."""

    __tablename__ = "packages"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), ForeignKey("requests.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class HeldField(Base):
    """A field an erasure had to keep for a legal hold (Art. 17(3)(b)), until the hold ends.

    Sealed under the hold's key for that end month (a keyring entry), so that destroying
    one key when the month has passed makes every field held until then unreadable.
    """

    __tablename__ = "held_fields"
    subject_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    hold: Mapped[str] = mapped_column(String(64))
    until: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    key_name: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class Suppression(Base):
    """An erased person's blind index: checks deny it and a re-import cannot bring it back."""

    __tablename__ = "suppressions"
    email_index: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class RateLimitCounter(Base):
    """A fixed-window rate-limit counter (see api.ratelimits); the key is a keyed MAC."""

    __tablename__ = "rate_limit_counters"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Double, index=True)  # epoch seconds, as the limits library counts


# Connected systems' tasks, their attempts and reconciliations, and the scheduler's and
# retention's tables live in modules of their own
# (imported here so that every table is on ``Base.metadata`` when this module is).
from privacy.storage.retention_models import AnonymisedRecord, JobRun, RetentionRun  # noqa: E402
from privacy.storage.task_models import ReconcileRun, RequestTask, TaskAttempt  # noqa: E402

__all__ = ["AnonymisedRecord", "Base", "JobRun", "ReconcileRun", "RequestTask", "RetentionRun", "TaskAttempt",
           "UtcDateTime"]
