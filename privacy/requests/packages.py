"""Access and portability packages: built when such a request completes, streamed to the
officer or to the customer's download link, and deleted when they expire.

A package is a zip file sealed under a key derived from its request's key, so forgetting
the request (or erasing its subject) makes any copy left on disk unreadable.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from privacy.context import Packager, PrivacyContext, as_json_time
from privacy.errors import Gone, NotFound
from privacy.languages import with_language
from privacy.ledger import append_audit
from privacy.requests import fulfilment, records, tokens
from privacy.requests.records import LOCAL_SYSTEM
from privacy.requests.tokens import DOWNLOAD_DAYS, DOWNLOAD_USES
from privacy.storage.repositories.requests import PackageRecord, RequestRecord, RequestRepository
from privacy.storage.repositories.subjects import SubjectRepository


class PackageService:
    def __init__(self, ctx: PrivacyContext, packager: Packager | None = None) -> None:
        self.ctx = ctx
        self.database = ctx.database
        self.session = ctx.database.session
        self.packager = packager if packager is not None else ctx.packages

    def build(self, session: Session, request: RequestRecord, key: bytes, results: dict[str, Any],
              now: dt.datetime) -> str:
        """Collect the subject's data (and the connected systems' ``results``) into a package
        and issue its download token; the link to mail."""
        if self.packager is None:
            raise RuntimeError("PackageService needs a packager to answer access requests")
        previous = RequestRepository(session).package_of(request.id)
        if previous is not None:  # an officer's retry completed the request again: the new package replaces it
            RequestRepository(session).drop_package(request.id)
            self.packager.delete(previous.file_name)
        subject = SubjectRepository(session).get(request.subject_id) if request.subject_id else None
        systems = {name: result.get("data", result) for name, result in results.items() if name != LOCAL_SYSTEM}
        data = fulfilment.collect(session, self.ctx, subject, request, request.type == "portability", systems)
        package_id = str(uuid.uuid4())
        file_key = self.ctx.crypto.derived_key(key, f"package|{package_id}")
        info = {"id": request.id, "type": request.type, "received_at": as_json_time(request.received_at),
                "due_at": as_json_time(request.extended_until or request.due_at)}
        file_name, size = self.packager.build(package_id, file_key, request.type, request.language, info, data, now)
        RequestRepository(session).add_package(PackageRecord(
            id=package_id, request_id=request.id, kind=request.type, file_name=file_name, size=size, created_at=now,
            expires_at=now + dt.timedelta(days=DOWNLOAD_DAYS), deleted_at=None))
        token = tokens.issue(session, request.id, "download", now + dt.timedelta(days=DOWNLOAD_DAYS), DOWNLOAD_USES)
        append_audit(session, LOCAL_SYSTEM, "request.package_built", now, target=request.id,
                     details={"package": package_id, "size": size})
        return with_language(f"{self.ctx.public_url}/v1/requests/{request.id}/download?token={token}",
                             request.language)

    def download(self, request_id: str, token: str, now: dt.datetime) -> tuple[str, Iterator[bytes]]:
        """The customer's expiring link, which works a limited number of times."""
        with self.database.unit_of_work() as session:
            request = records.load(session, request_id, lock=True)
            row = tokens.use(session, request, token, "download", now)
            package = self.live_package(session, request, now)
            append_audit(session, "customer", "request.package_downloaded", now, target=request.id,
                         details={"package": package.id, "by": "customer", "uses_left": row.uses_left})
            return self.stream(request, package)

    def live_package(self, session: Session, request: RequestRecord, now: dt.datetime) -> PackageRecord:
        """The request's package: 404 if it has none, 410 once it has expired."""
        package = RequestRepository(session).package_of(request.id)
        if package is None:
            raise NotFound("this request has no package", {"package": ["none"]})
        if package.deleted_at is not None or package.expires_at <= now:
            raise Gone("the package has expired and was deleted", {"package": ["expired"]})
        return package

    def stream(self, request: RequestRecord, package: PackageRecord) -> tuple[str, Iterator[bytes]]:
        """The package's download name and its decrypted bytes."""
        assert self.packager is not None
        key = self.ctx.crypto.derived_key(self.ctx.crypto.request_key(request), f"package|{package.id}")
        return f"{package.kind}-{request.id}.zip", self.packager.open(package.file_name, key)

    def purge_packages(self, now: dt.datetime) -> int:
        """Delete the files of packages past their expiry."""
        rows = RequestRepository(self.session).expired_packages(now)
        self.session.rollback()
        for package in rows:
            if self.packager is not None:
                self.packager.delete(package.file_name)
            with self.database.unit_of_work() as session:
                if RequestRepository(session).package_deleted(package.id, now):
                    append_audit(session, LOCAL_SYSTEM, "request.package_deleted", now, target=package.request_id,
                                 details={"package": package.id})
        return len(rows)
