"""Row ids: RFC 9562 version 7 UUIDs, ordered by creation time."""
from __future__ import annotations

import time
import uuid

from flask.testing import FlaskClient

from privacy.consent.service import is_uuid
from privacy.ids import new_id, uuid7
from tests.conftest import SIGNUP


def test_an_id_is_a_version_7_rfc_uuid_carrying_its_creation_time() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid7()
    after = time.time_ns() // 1_000_000
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after


def test_ids_made_in_later_milliseconds_sort_after_earlier_ones() -> None:
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    assert first < second
    assert len({new_id() for _ in range(10_000)}) == 10_000


def test_a_new_subject_and_its_receipt_get_time_ordered_ids(client: FlaskClient, writer: dict[str, str]) -> None:
    body = client.post("/v1/consents", json=SIGNUP, headers=writer).json
    for value in (body["subject_id"], body["receipt"]["consentReceiptID"]):
        assert is_uuid(value) and uuid.UUID(value).version == 7


def test_a_new_id_is_written_exactly_as_the_uuid_it_stands_for() -> None:
    for _ in range(2_000):
        text = new_id()
        assert str(uuid.UUID(text)) == text and uuid.UUID(text).version == 7
