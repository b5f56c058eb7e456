"""The JSON answers: orjson where it can, Flask's own encoder for everything else."""
from __future__ import annotations

import datetime as dt
import json
import uuid

from flask import Flask

from api.jsonio import FastJSONProvider


def test_an_answer_reads_back_as_what_was_sent(app: Flask) -> None:
    body = {"subject_id": str(uuid.uuid4()), "name": "Åsa Öberg \u2028 \"quoted\" \\ \x01",
            "consents": {"marketing_email": {"status": "granted", "notice_version": None}},
            "n": [1, 2.5, True, False, None], "uuid": uuid.UUID(int=7)}
    text = app.json.dumps(body)
    assert isinstance(app.json, FastJSONProvider)
    assert json.loads(text) == {**body, "uuid": str(uuid.UUID(int=7))}


def test_dates_are_written_as_flask_writes_them(app: Flask) -> None:
    when = dt.datetime(2026, 11, 22, 14, 0, tzinfo=dt.UTC)
    assert json.loads(app.json.dumps({"at": when})) == {"at": "Sun, 22 Nov 2026 14:00:00 GMT"}


def test_what_orjson_refuses_is_written_by_the_standard_library(app: Flask) -> None:
    assert json.loads(app.json.dumps({"big": 2**70})) == {"big": 2**70}
    assert json.loads(app.json.dumps({1: "one"})) == {"1": "one"}


def test_formatting_options_are_honoured(app: Flask) -> None:
    assert "\n" in app.json.dumps({"a": 1}, indent=2)
