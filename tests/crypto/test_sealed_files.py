"""Files at rest: STREAM-sealed segments under AES-256-GCM (SealedWriter, open_sealed)."""
from __future__ import annotations

import io
import os
import zipfile

import pytest

from privacy.crypto.keys import CryptoError
from privacy.crypto.sealed_files import SealedWriter, new_file_key, open_sealed

CHUNK = 64
HEADER = 8  # format byte + nonce prefix


def _seal(plaintext: bytes, key: bytes, context: str = "package|r1", chunk_size: int = CHUNK,
          write_size: int = 7) -> bytes:
    out = io.BytesIO()
    with SealedWriter(out, key, context, chunk_size=chunk_size) as writer:
        for start in range(0, len(plaintext), write_size):
            writer.write(plaintext[start:start + write_size])
    return out.getvalue()


def _open(blob: bytes, key: bytes, context: str = "package|r1") -> bytes:
    return b"".join(open_sealed(io.BytesIO(blob), key, context))


def _segments(blob: bytes) -> tuple[bytes, list[bytes]]:
    """The header and the framed segments (length prefix included) of a sealed file."""
    header, rest, segments = blob[:HEADER], blob[HEADER:], []
    while rest:
        size = 4 + int.from_bytes(rest[:4], "big")
        segments.append(rest[:size])
        rest = rest[size:]
    return header, segments


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 3, 7 * CHUNK])
def test_what_is_sealed_opens_to_the_same_bytes(size: int) -> None:
    key, plaintext = new_file_key(), os.urandom(size)
    blob = _seal(plaintext, key)
    assert _open(blob, key) == plaintext
    _header, segments = _segments(blob)
    assert len(segments) == max(1, -(-size // CHUNK))


def test_one_large_write_is_cut_into_chunks_and_opens() -> None:
    key, plaintext = new_file_key(), os.urandom(10 * CHUNK + 5)
    blob = _seal(plaintext, key, write_size=len(plaintext))
    assert _open(blob, key) == plaintext
    assert len(_segments(blob)[1]) == 11


def test_the_default_chunk_size_round_trips_several_chunks() -> None:
    key, plaintext = new_file_key(), os.urandom(3 * 64 * 1024 + 17)
    out = io.BytesIO()
    with SealedWriter(out, key, "ctx") as writer:
        writer.write(plaintext)
        assert writer.tell() == len(plaintext)
    assert b"".join(open_sealed(io.BytesIO(out.getvalue()), key, "ctx")) == plaintext


def test_the_ciphertext_does_not_contain_the_plaintext() -> None:
    key = new_file_key()
    plaintext = b"Anna Andersson, anna@example.se, Storgatan 1 " * 20
    blob = _seal(plaintext, key)
    assert b"anna@example.se" not in blob
    assert b"Andersson" not in blob


def test_the_same_plaintext_seals_differently_each_time() -> None:
    key = new_file_key()
    assert _seal(b"same", key) != _seal(b"same", key)


def test_closing_the_writer_leaves_the_output_open() -> None:
    out = io.BytesIO()
    writer = SealedWriter(out, new_file_key(), "ctx")
    writer.write(b"abc")
    writer.close()
    writer.close()  # twice is harmless
    assert not out.closed
    assert writer.writable() and not writer.seekable() and not writer.readable()
    with pytest.raises(ValueError):
        writer.write(b"more")


def test_a_flipped_byte_is_refused() -> None:
    key = new_file_key()
    blob = bytearray(_seal(os.urandom(3 * CHUNK), key))
    for position in (0, 3, HEADER + 2, HEADER + 10, len(blob) // 2, len(blob) - 1):
        damaged = bytearray(blob)
        damaged[position] ^= 0x01
        with pytest.raises(CryptoError):
            _open(bytes(damaged), key)


def test_swapped_segments_are_refused() -> None:
    key = new_file_key()
    header, segments = _segments(_seal(os.urandom(3 * CHUNK + 1), key))
    segments[0], segments[1] = segments[1], segments[0]
    with pytest.raises(CryptoError):
        _open(header + b"".join(segments), key)


def test_a_repeated_segment_is_refused() -> None:
    key = new_file_key()
    header, segments = _segments(_seal(os.urandom(3 * CHUNK + 1), key))
    with pytest.raises(CryptoError):
        _open(header + segments[0] + b"".join(segments), key)


def test_a_file_without_its_final_segment_is_refused() -> None:
    key = new_file_key()
    header, segments = _segments(_seal(os.urandom(3 * CHUNK + 1), key))
    with pytest.raises(CryptoError, match=r"does not open|truncated"):
        _open(header + b"".join(segments[:-1]), key)


def test_a_truncated_file_is_refused() -> None:
    key = new_file_key()
    blob = _seal(os.urandom(3 * CHUNK + 1), key)
    for cut in (0, 1, HEADER, HEADER + 2, HEADER + 30, len(blob) - 1):
        with pytest.raises(CryptoError):
            _open(blob[:cut], key)


def test_data_appended_after_the_final_segment_is_refused() -> None:
    key = new_file_key()
    blob = _seal(os.urandom(2 * CHUNK), key)
    _header, segments = _segments(blob)
    for junk in (b"\x00", b"junk", b"\x00\x00\x00\x20" + os.urandom(32), segments[-1]):
        with pytest.raises(CryptoError):
            _open(blob + junk, key)


def test_a_wrong_key_is_refused() -> None:
    blob = _seal(b"secret", new_file_key())
    with pytest.raises(CryptoError):
        _open(blob, new_file_key())


def test_a_wrong_context_is_refused() -> None:
    key = new_file_key()
    blob = _seal(b"secret", key, context="package|r1")
    with pytest.raises(CryptoError):
        _open(blob, key, context="package|r2")


def test_a_writer_left_by_an_exception_leaves_a_file_that_does_not_open() -> None:
    key, out = new_file_key(), io.BytesIO()
    with pytest.raises(RuntimeError), SealedWriter(out, key, "ctx") as writer:
        writer.write(b"half of a package")
        raise RuntimeError("export failed")
    with pytest.raises(CryptoError, match="truncated"):
        _open(out.getvalue(), key, "ctx")


def test_a_zip_written_through_the_writer_reads_back_after_decryption() -> None:
    key, out = new_file_key(), io.BytesIO()
    text = "Åsa Öberg bor på Ängsvägen 3\n" * 2000
    with (
        SealedWriter(out, key, "ctx", chunk_size=1024) as writer,
        zipfile.ZipFile(writer, "w", zipfile.ZIP_DEFLATED) as zf,
    ):
        zf.writestr("small.txt", "hej")
        with zf.open("streamed.txt", "w") as entry:
            for line in text.splitlines(keepends=True):
                entry.write(line.encode())
    assert "Ängsvägen".encode() not in out.getvalue()
    with zipfile.ZipFile(io.BytesIO(_open(out.getvalue(), key, "ctx"))) as zf:
        assert zf.namelist() == ["small.txt", "streamed.txt"]
        assert zf.testzip() is None
        assert zf.read("small.txt") == b"hej"
        assert zf.read("streamed.txt").decode() == text
