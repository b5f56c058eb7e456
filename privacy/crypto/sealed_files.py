"""Files at rest (access packages): streamed authenticated encryption under a file key."""
from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privacy.crypto.keys import KEY_BYTES, CryptoError

# --- files at rest (streaming) ----------------------------------------------------------
#
# The STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online authenticated-
# encryption and its nonce-reuse misuse-resistance", CRYPTO 2015) over AES-256-GCM:
#
#   header   = format byte || 7-byte random nonce prefix
#   segment  = 4-byte big-endian ciphertext length || AES-GCM(plaintext chunk)
#   nonce(i) = prefix || i as 4-byte big-endian || 0x00, or 0x01 for the final segment
#   aad      = "file|<context>"
#
# A segment moved, dropped, repeated or cut off fails to open; the last flag makes a file
# cut at a segment boundary fail too, and nothing may follow the final segment.

SEALED_FILE_FORMAT = b"\x01"
SEALED_PREFIX_BYTES = 7
SEALED_MAX_CHUNK = 16 * 1024 * 1024
_SEALED_MAX_SEGMENTS = 2**32
_TAG_BYTES = 16


def new_file_key() -> bytes:
    """A fresh random key for one sealed file (32 bytes)."""
    return os.urandom(KEY_BYTES)


def _segment_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class SealedWriter(io.RawIOBase):
    """A write-only stream that seals what is written to ``out`` in authenticated segments.

    Memory stays at one chunk whatever the file size. :meth:`close` writes the final
    segment and so is what makes the file complete; it leaves ``out`` open. Leaving a
    ``with`` block by an exception, or dropping the writer unclosed, writes no final
    segment, so a half-written file is refused by :func:`open_sealed` as truncated.
    ``tell()`` counts plaintext bytes (enough for :class:`zipfile.ZipFile`).
    """

    def __init__(self, out: BinaryIO, key: bytes, context: str, chunk_size: int = 64 * 1024) -> None:
        super().__init__()
        if len(key) != KEY_BYTES:
            raise ValueError("file key must be 32 bytes")
        if not 1 <= chunk_size <= SEALED_MAX_CHUNK:
            raise ValueError(f"chunk_size must be between 1 and {SEALED_MAX_CHUNK}")
        self._out = out
        self._aead = AESGCM(key)
        self._aad = f"file|{context}".encode()
        self._chunk_size = chunk_size
        self._prefix = os.urandom(SEALED_PREFIX_BYTES)
        self._pending = bytearray()
        self._index = 0
        self._written = 0
        self._aborted = False
        out.write(SEALED_FILE_FORMAT + self._prefix)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        if self.closed:
            raise ValueError("tell on a closed SealedWriter")
        return self._written

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("write to a closed SealedWriter")
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            # A full chunk is held back until more data comes: only close() knows the last one.
            if len(self._pending) == self._chunk_size:
                self._emit(last=False)
            take = self._chunk_size - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
        self._written += size
        return size

    def _emit(self, last: bool) -> None:
        if self._index >= _SEALED_MAX_SEGMENTS:
            raise CryptoError("sealed file has too many segments")
        nonce = _segment_nonce(self._prefix, self._index, last)
        sealed = self._aead.encrypt(nonce, bytes(self._pending), self._aad)
        self._out.write(len(sealed).to_bytes(4, "big") + sealed)
        self._pending.clear()
        self._index += 1

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._aborted:
                self._emit(last=True)
        finally:
            self._pending.clear()
            super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._aborted = True
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "closed", True):
            self._aborted = True  # never seal the end of a file nobody closed
        super().__del__()


def _read_exact(src: BinaryIO, size: int) -> bytes:
    parts, left = [], size
    while left:
        part = src.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def open_sealed(src: BinaryIO, key: bytes, context: str) -> Iterator[bytes]:
    """Yield the plaintext of a file written by :class:`SealedWriter`, segment by segment.

    Raises :class:`CryptoError` (while iterating) on a wrong key or context, a changed,
    reordered or missing segment, a truncated file or data after the final segment. Each
    segment is authentic when yielded, but the file is only known complete when the
    iteration ends without an error: do not act on a partial result.
    """
    if len(key) != KEY_BYTES:
        raise ValueError("file key must be 32 bytes")
    aead, aad = AESGCM(key), f"file|{context}".encode()
    header = _read_exact(src, 1 + SEALED_PREFIX_BYTES)
    if len(header) < 1 + SEALED_PREFIX_BYTES or header[:1] != SEALED_FILE_FORMAT:
        raise CryptoError("not a sealed file (unknown format or short header)")
    prefix = header[1:]
    length_field = _read_exact(src, 4)
    index = 0
    while True:
        if len(length_field) < 4:
            raise CryptoError("sealed file is truncated (its final segment is missing)")
        length = int.from_bytes(length_field, "big")
        if not _TAG_BYTES <= length <= SEALED_MAX_CHUNK + _TAG_BYTES or index >= _SEALED_MAX_SEGMENTS:
            raise CryptoError("sealed file is damaged (bad segment length)")
        sealed = _read_exact(src, length)
        if len(sealed) < length:
            raise CryptoError("sealed file is truncated (its final segment is missing)")
        length_field = _read_exact(src, 4)
        last = not length_field  # data after a final segment makes it open as non-final, and fail
        try:
            plaintext = aead.decrypt(_segment_nonce(prefix, index, last), sealed, aad)
        except (InvalidTag, ValueError) as exc:
            raise CryptoError("sealed file does not open under this key and context, or was altered") from exc
        if plaintext:
            yield plaintext
        if last:
            return
        index += 1
