"""Access packages at rest: encrypted zip files in ``<instance>/exports``.

A package is written once, straight through the encrypting writer (no plaintext copy ever
touches the disk), read back as a stream of decrypted chunks for a download, and deleted
when it expires. The file key comes from the caller (derived from the request's key), so
destroying the request's key also makes any leftover file unreadable.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from exports.packages import PackageContent, write_package
from privacy.crypto.sealed_files import SealedWriter, open_sealed

SUFFIX = ".zip.sealed"


class PackageStore:
    """Implements :class:`privacy.context.Packager` on a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, file_name: str) -> Path:
        if "/" in file_name or file_name.startswith("."):
            raise ValueError("bad package file name")
        return self.folder / file_name

    def build(self, package_id: str, key: bytes, kind: str, language: str, request: dict[str, Any],
              data: dict[str, Any], now: dt.datetime) -> tuple[str, int]:
        """Write the package for ``data``; returns (file name, bytes on disk)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        file_name = package_id + SUFFIX
        path = self._path(file_name)
        tmp = path.with_name(f".{file_name}.{os.getpid()}")
        content = PackageContent(kind=kind, language=language, generated_at=now, request=request, data=data)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                writer = SealedWriter(out, key, context=package_id)
                write_package(cast(BinaryIO, writer), content)
                writer.close()
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return file_name, path.stat().st_size

    def open(self, file_name: str, key: bytes) -> Iterator[bytes]:
        """The decrypted zip, chunk by chunk; the file is opened now, so a missing one fails here."""
        handle = self._path(file_name).open("rb")
        package_id = file_name[: -len(SUFFIX)]

        def chunks() -> Iterator[bytes]:
            with handle:
                yield from open_sealed(handle, key, package_id)

        return chunks()

    def delete(self, file_name: str) -> None:
        self._path(file_name).unlink(missing_ok=True)

