"""One repository per aggregate: the only place where statements on its tables are written.

| module | repository | tables |
|---|---|---|
| ``subjects`` | :class:`SubjectRepository` | subjects, subject_fields, suppressions, held_fields |
| ``consent_states`` | :class:`ConsentStateRepository` | consent_states |
| ``ledger`` | :class:`LedgerRepository` | consent_events, audit_log, chain_heads |
| ``outbox`` | :class:`OutboxRepository` | mail_outbox |
| ``confirmations`` | :class:`ConfirmationRepository` | confirmations |
| ``idempotency`` | :class:`IdempotencyRepository` | idempotency_keys |
| ``requests`` | :class:`RequestRepository` | requests, request_tokens, request_tasks, packages |
| ``keys`` | :class:`KeyRepository` | master_keys, keyring |
| ``jobs`` | :class:`JobRunRepository` | job_runs |
| ``retention`` | :class:`RetentionRepository` | retention_runs, anonymised_records (and the sweep's selection) |
| ``reports`` | :class:`ReportRepository` | reads only: counts over the tables above and the audit log |

A repository is built on a transaction: a raw one (:meth:`Database.raw_read`,
:meth:`Database.raw_write`, the sign-up's fast path, statements compiled once and run on
the DBAPI cursor) or a unit of work's session (Core on the session's connection). The
statements are the same either way. The sign-up's rows are prepared by static
``prepare*`` methods (values converted for the database) before the write lock is taken.
"""
