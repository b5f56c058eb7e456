"""The only module that sees keys: envelope encryption, blind index, signing. (Shredding
is a write: ``SubjectRepository.shred`` destroys a subject's wrapped key.)

Key hierarchy:

* the **master key** (``PRIVACY_MASTER_KEY``) never touches a field; it wraps data keys
  and the keyring's secrets (AES-256-GCM);
* each subject has a **data key**, stored wrapped; every personal field is sealed under it
  with ``subject id | field name`` as associated data, so a ciphertext copied to another
  row or column fails to open; destroying the wrapped key shreds every field at once;
* the **index root** (random, wrapped by the master key) feeds HKDF, which derives the
  HMAC key of the e-mail blind index and the key of withdraw links. It is not derived
  straight from the master key so that rotating the master key leaves every blind index,
  and so every suppression entry of an erased person, valid;
* the **receipt signing key** (Ed25519, wrapped by the master key) signs consent receipts.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from typing import Any, Protocol

import nacl.signing
import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from privacy.storage.repositories.keys import KeyRepository, KeyringRecord

KEY_BYTES = 32
NONCE_BYTES = 12
FIELD_FORMAT = b"\x01"
HOLD_KEY_PREFIX = "hold|"  # a legal hold's key: hold|<code>|<end month>, destroyed once the month is over


class CryptoError(Exception):
    """A key or ciphertext problem; never carries plaintext."""


class KeyShredded(CryptoError):
    """The subject's data key was destroyed: its fields are gone for good."""


class MasterKeyRefused(CryptoError):
    """The configured master key is not the one this database is wrapped under."""


class KeyOwner(Protocol):
    """A subject or a data-subject request, as far as its wrapped key goes."""

    @property
    def id(self) -> str: ...

    @property
    def wrapped_key(self) -> bytes | None: ...

    @property
    def master_key_id(self) -> str | None: ...


def parse_master_key(value: str) -> bytes:
    """Decode a base64 master key and insist on 32 bytes."""
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("master key is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise ValueError(f"master key must be {KEY_BYTES} bytes, got {len(key)}")
    return key


def generate_master_key() -> str:
    """A new master key, base64-encoded."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def key_fingerprint(key: bytes) -> str:
    """A public, stable id for a master key (not reversible)."""
    return hmac.new(key, b"privacy master key id v1", hashlib.sha256).hexdigest()[:32]


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError) as exc:
        raise CryptoError("ciphertext does not open under this key and context") from exc


def _hkdf(root: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(root)


def normalise_email(email: str) -> str:
    """The form of an e-mail that the blind index is computed over (trimmed, lower case)."""
    return email.strip().lower()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    """What is stored of a random secret handed out (API key, link or verification token):
    its SHA-256, so that a copy of the database holds nothing that can be presented."""
    return hashlib.sha256(token.encode()).hexdigest()


class Crypto:
    """Envelope encryption under one master key, plus the keyring's derived keys."""

    INDEX_ROOT = "index_root"
    SIGNING_KEY = "receipt_signing_ed25519"

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise ValueError("master key must be 32 bytes")
        self._master = master_key
        self.master_key_id = key_fingerprint(master_key)
        self._index_key: bytes | None = None
        self._link_key: bytes | None = None
        self._service_key: bytes | None = None
        self._signing_key: Ed25519PrivateKey | None = None
        self._signer: nacl.signing.SigningKey | None = None
        self._signing_kid: str | None = None
        self._jws_header = ""

    # --- start-up -------------------------------------------------------------------

    def bootstrap(self, session: Session, now: dt.datetime) -> None:
        """Check the master key against the database and create the keyring on first use."""
        keys = KeyRepository(session)
        rows = {mk.key_id: mk for mk in keys.master_keys()}
        mine = rows.get(self.master_key_id)
        if mine is not None and mine.status == "retired":
            assert mine.retired_at is not None
            raise MasterKeyRefused(
                "PRIVACY_MASTER_KEY was retired by 'privacy keys rotate-master' "
                f"on {mine.retired_at:%Y-%m-%d}; start with the new key"
            )
        active = [mk for mk in rows.values() if mk.status == "active"]
        if mine is None and active:
            raise MasterKeyRefused(
                "PRIVACY_MASTER_KEY is not the key this database is encrypted under "
                f"(expected key id {active[0].key_id}, got {self.master_key_id})"
            )
        if mine is not None and mine.status != "active":
            raise MasterKeyRefused("this master key is the target of an unfinished rotation")
        try:
            if mine is None:
                keys.add_master_key(self.master_key_id, "active", now)
            for name, make in ((self.INDEX_ROOT, self._new_index_root), (self.SIGNING_KEY, self._new_signing_key)):
                if keys.entry(name) is None:
                    secret, public = make()
                    keys.add_entry(KeyringRecord(name, self.wrap_secret(name, secret), self.master_key_id, public, now))
            session.commit()
        except IntegrityError:
            # Another worker bootstrapped at the same moment; its rows are as good as ours.
            session.rollback()
        self.load_keyring(session)

    @staticmethod
    def _new_index_root() -> tuple[bytes, str | None]:
        return os.urandom(KEY_BYTES), None

    @staticmethod
    def _new_signing_key() -> tuple[bytes, str | None]:
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return raw, b64url(public)

    def load_keyring(self, session: Session) -> None:
        entries = {e.name: e for e in KeyRepository(session).entries()}
        root = self.unwrap_secret(self.INDEX_ROOT, entries[self.INDEX_ROOT].wrapped)
        self._index_key = _hkdf(root, "privacy blind-index v1 email")
        self._link_key = _hkdf(root, "privacy withdraw-link v1")
        self._service_key = _hkdf(root, "privacy service-mail v1")
        signing = entries[self.SIGNING_KEY]
        seed = self.unwrap_secret(self.SIGNING_KEY, signing.wrapped)
        self._signing_key = Ed25519PrivateKey.from_private_bytes(seed)
        # Ed25519 signatures are deterministic (RFC 8032): libsodium's are the very bytes
        # OpenSSL's would be, in two thirds of the time (cryptography's bundled OpenSSL
        # uses 32-bit field arithmetic); every sign-up signs a 3.5 KB receipt.
        self._signer = nacl.signing.SigningKey(seed)
        self._signing_kid = hashlib.sha256((signing.public or "").encode()).hexdigest()[:16]
        header = {"alg": "EdDSA", "kid": self._signing_kid, "typ": "JWT"}
        self._jws_header = b64url(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())

    # --- wrapping -------------------------------------------------------------------

    def rewrap(self, new: Crypto, wrapped: bytes, aad: bytes) -> bytes:
        """A key wrapped under this master key, wrapped under ``new``'s instead."""
        return _seal(new._master, _open(self._master, wrapped, aad), aad)

    def wrap_secret(self, name: str, secret: bytes) -> bytes:
        return _seal(self._master, secret, f"keyring|{name}".encode())

    def unwrap_secret(self, name: str, wrapped: bytes) -> bytes:
        return _open(self._master, wrapped, f"keyring|{name}".encode())

    def new_data_key(self, subject_id: str) -> tuple[bytes, bytes]:
        """A fresh data key for a subject and its wrapped form to store."""
        return self._new_wrapped_key(f"dek|{subject_id}")

    def data_key(self, subject: KeyOwner) -> bytes:
        """Unwrap a subject's data key; :class:`KeyShredded` once it was destroyed."""
        return self._unwrap_owned_key(subject, "data key of subject", "subject", f"dek|{subject.id}")

    def _hold_key(self, session: Session, name: str, now: dt.datetime) -> bytes:
        """The hold key ``name`` from the keyring, made now if it is not there yet."""
        keys = KeyRepository(session)
        entry = keys.entry(name)
        if entry is None:
            key = AESGCM.generate_key(bit_length=256)
            try:
                with session.begin_nested():
                    keys.add_entry(KeyringRecord(name, self.wrap_secret(name, key), self.master_key_id, None, now))
                return key
            except IntegrityError:  # another erasure made this month's key a moment ago
                entry = keys.entry(name)
        assert entry is not None
        return self.unwrap_secret(name, entry.wrapped)

    def new_request_key(self, request_id: str) -> tuple[bytes, bytes]:
        """A fresh key for a data-subject request (its sealed details, mails and package)."""
        return self._new_wrapped_key(f"rdek|{request_id}")

    def request_key(self, request: KeyOwner) -> bytes:
        """Unwrap a request's key; :class:`KeyShredded` once it was destroyed."""
        return self._unwrap_owned_key(request, "key of request", "request", f"rdek|{request.id}")

    def service_key(self) -> bytes:
        """The key of the service's own mails (to its officers: no subject or request owns
        them); derived from the keyring, so it outlives a master key rotation."""
        return self._require(self._service_key)

    def new_task_key(self, task_id: str) -> tuple[bytes, bytes]:
        """A fresh key for one connected system's task (whom it looks for), destroyed when it ends."""
        return self._new_wrapped_key(f"tdek|{task_id}")

    def task_key(self, task: KeyOwner) -> bytes:
        """Unwrap a task's key; :class:`KeyShredded` once it was destroyed."""
        return self._unwrap_owned_key(task, "key of task", "task", f"tdek|{task.id}")

    def _new_wrapped_key(self, context: str) -> tuple[bytes, bytes]:
        key = AESGCM.generate_key(bit_length=256)
        return key, _seal(self._master, key, context.encode())

    def _unwrap_owned_key(self, owner: KeyOwner, key_name: str, owner_name: str, context: str) -> bytes:
        if owner.wrapped_key is None:
            raise KeyShredded(f"{key_name} {owner.id} was destroyed")
        if owner.master_key_id != self.master_key_id:
            raise CryptoError(f"{owner_name} {owner.id} is wrapped under master key {owner.master_key_id}")
        return _open(self._master, owner.wrapped_key, context.encode())

    def seal_held(self, session: Session, hold: str, until: dt.datetime, subject_id: str, field: str, value: str,
                  now: dt.datetime, cache: dict[str, bytes] | None = None) -> tuple[str, bytes]:
        """Seal a field an erasure must keep under the key of its hold's end month.

        One key per hold and month: when the month is over, destroying that one keyring
        entry makes every field held until then unreadable. Returns (key name, ciphertext).
        ``cache`` (key name -> key) spares a sweep the keyring read per subject; a key in
        it is one whose month is not over, so it cannot have been destroyed meanwhile.
        """
        name = f"{HOLD_KEY_PREFIX}{hold}|{until:%Y-%m}"
        key = cache.get(name) if cache is not None else None
        if key is None:
            key = self._hold_key(session, name, now)
            if cache is not None:
                cache[name] = key
        aad = f"held|{subject_id}|{field}|{until.isoformat()}".encode()
        return name, FIELD_FORMAT + _seal(key, value.encode(), aad)

    def open_held(self, session: Session, key_name: str, until: dt.datetime, subject_id: str, field: str,
                  blob: bytes) -> str:
        entry = KeyRepository(session).entry(key_name)
        if entry is None:
            raise KeyShredded(f"hold key {key_name} was destroyed")
        key = self.unwrap_secret(key_name, entry.wrapped)
        return _open(key, blob[1:], f"held|{subject_id}|{field}|{until.isoformat()}".encode()).decode()

    @staticmethod
    def derived_key(key: bytes, purpose: str) -> bytes:
        """A key for one use derived from a data key (a package file from its request's key)."""
        return _hkdf(key, purpose)

    # --- fields ---------------------------------------------------------------------

    @staticmethod
    def encrypt_field(dek: bytes, subject_id: str, field: str, value: str) -> bytes:
        return FIELD_FORMAT + _seal(dek, value.encode(), f"field|{subject_id}|{field}".encode())

    @staticmethod
    def decrypt_field(dek: bytes, subject_id: str, field: str, blob: bytes) -> str:
        if blob[:1] != FIELD_FORMAT:
            raise CryptoError("unknown field ciphertext format")
        return _open(dek, blob[1:], f"field|{subject_id}|{field}".encode()).decode()

    # --- blind index and links --------------------------------------------------------

    def _require(self, value: bytes | None) -> bytes:
        if value is None:
            raise CryptoError("keyring not loaded: call bootstrap() first")
        return value

    def blind_index(self, email: str) -> bytes:
        """HMAC-SHA256 of the normalised e-mail under the derived index key."""
        return hmac.new(self._require(self._index_key), normalise_email(email).encode(), hashlib.sha256).digest()

    def blind_indexer(self) -> Callable[[str], bytes]:
        """A fast blind-index function for bulk work (one prepared HMAC state, copied)."""
        mac = _prepared_hmac(self._require(self._index_key), b"")
        return lambda email: mac(normalise_email(email).encode())

    def link_token(self, *parts: str) -> str:
        """A MAC over ``parts`` for links that must not be forgeable (withdraw links)."""
        mac = hmac.new(self._require(self._link_key), "|".join(parts).encode(), hashlib.sha256).digest()
        return b64url(mac[:20])

    def link_tokens(self, *first: str) -> Callable[..., str]:
        """A fast :meth:`link_token` for bulk work: ``link_tokens(*first)(*rest)`` is
        ``link_token(*first, *rest)``, over an HMAC state prepared once with ``first`` fed in."""
        mac = _prepared_hmac(self._require(self._link_key), "".join(f"{part}|" for part in first).encode())
        return lambda *rest: b64url(mac("|".join(rest).encode())[:20])

    def check_link_token(self, token: str, *parts: str) -> bool:
        return hmac.compare_digest(token.encode(), self.link_token(*parts).encode())

    # --- signing ----------------------------------------------------------------------

    def sign_jws(self, payload: dict[str, Any]) -> str:
        """JWS compact serialisation (RFC 7515) of ``payload`` with EdDSA (Ed25519)."""
        if self._signer is None:
            raise CryptoError("keyring not loaded: call bootstrap() first")
        signing_input = f"{self._jws_header}.{b64url(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))}"
        return signing_input + "." + b64url(self._signer.sign(signing_input.encode()).signature)

    def public_jwks(self) -> dict[str, Any]:
        """The receipt-signing public key as a JWK set (RFC 8037, OKP / Ed25519)."""
        if self._signing_key is None:
            raise CryptoError("keyring not loaded: call bootstrap() first")
        raw = self._signing_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64url(raw), "kid": self._signing_kid,
                          "alg": "EdDSA", "use": "sig"}]}


def _prepared_hmac(key: bytes, prefix: bytes) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 (RFC 2104) of ``prefix + message`` over SHA-256 states prepared once:
    three times faster than ``hmac.digest`` per item in bulk work, and equal to it (tests check)."""
    key = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    inner_start = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner_start.update(prefix)
    outer_start = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def mac(message: bytes) -> bytes:
        inner = inner_start.copy()
        inner.update(message)
        outer = outer_start.copy()
        outer.update(inner.digest())
        return outer.digest()

    return mac


def verify_jws(jws: str, public_key_x: str) -> dict[str, Any]:
    """Verify a compact EdDSA JWS with a raw public key (base64url); return the payload."""
    header_b64, payload_b64, sig_b64 = jws.split(".")
    key = Ed25519PublicKey.from_public_bytes(_b64url_decode(public_key_x))
    key.verify(_b64url_decode(sig_b64), f"{header_b64}.{payload_b64}".encode())
    payload: dict[str, Any] = json.loads(_b64url_decode(payload_b64))
    return payload


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
