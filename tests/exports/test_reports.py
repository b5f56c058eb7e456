"""The retention report and the Art. 30 record: figures right for a small known data set,
the same figures in JSON, CSV, HTML and PDF, both languages, deterministic HTML."""
from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.services import current, unit_of_work
from exports.reports.render import labelled, render_retention, retention_html
from exports.reports.retention import purpose_titles
from privacy.context import utcnow
from privacy.ledger import append_audit
from privacy.storage.models import HeldField
from tests.conftest import SIGNUP

pypdf = pytest.importorskip("pypdf")

SWEPT = {"run": "r1", "as_of": "2026-11-01T00:00:00Z", "dry_run": False,
         "counts": {"marketing_email": {"contact": {"delete": 3, "anonymise": 0, "minimise": 0}},
                    "loyalty_club": {"identity": {"delete": 0, "anonymise": 5, "minimise": 1}}},
         "subjects": {"deleted": 3, "anonymised": 5}, "fields_removed": 9, "tasks_planned": 2}


def _sign_up(client: FlaskClient, writer: dict[str, str], email: str, **purposes: bool) -> str:
    body: dict[str, Any] = copy.deepcopy(SIGNUP)
    body["subject"]["email"] = email
    body["purposes"].update(purposes)
    r = client.post("/v1/consents", json=body, headers=writer)
    assert r.status_code == 201, r.json
    return str(r.json["subject_id"])


@pytest.fixture
def known(app: Flask, client: FlaskClient, writer: dict[str, str]) -> Flask:
    """Two members (one withdraws profiling), an open access request, a held field, a sweep
    (and a dry run, which counts for nothing) and an erasure in the audit log."""
    _sign_up(client, writer, "anna@example.se")
    bo = _sign_up(client, writer, "bo@example.se", profiling=True)
    _sign_up(client, writer, "bo@example.se", profiling=False)
    assert client.post("/v1/requests", json={"type": "access", "email": "anna@example.se"}).status_code == 202
    now = utcnow()
    with app.app_context(), unit_of_work() as session:
        session.add(HeldField(subject_id=bo, name="first_name", hold="bookkeeping",
                              until=dt.datetime(2033, 5, 17, tzinfo=dt.UTC), key_name="hold-2033-05",
                              ciphertext=b"x", created_at=now))
        append_audit(session, "retention", "retention.swept", now, details=SWEPT)
        append_audit(session, "retention", "retention.swept", now, details={**SWEPT, "dry_run": True})
        append_audit(session, "requests", "subject.erased", now, target="someone", details={})
    return app


def _figures(client: FlaskClient, officer: dict[str, str], **query: str) -> dict[tuple[str, ...], int]:
    r = client.get("/v1/reports/retention", query_string=query, headers=officer)
    assert r.status_code == 200, r.json
    return {(f["section"], f["purpose"], f["category"], f["measure"]): f["value"] for f in r.json["figures"]}


def test_figures_of_a_known_data_set(known: Flask, client: FlaskClient, officer: dict[str, str]) -> None:
    figures = _figures(client, officer)
    month = utcnow().strftime("%Y-%m")
    assert figures[("held", "loyalty_club", "", "subjects")] == 2
    assert figures[("held", "loyalty_club", "identity", "subjects")] == 2
    assert figures[("age", "loyalty_club", "identity", "lt_30d")] == figures[("held", "loyalty_club", "identity",
                                                                              "fields")]
    assert figures[("due", "profiling", "", "due_30d")] == 2  # Anna declined, Bo withdrew: due in 30 days
    assert figures[("due", "profiling", "", "past_due")] == 0
    assert figures[("due", "loyalty_club", "", "due_30d")] == 0
    assert figures[("removed", "marketing_email", "contact", "delete")] == 3  # the dry run is not counted
    assert figures[("removed", "loyalty_club", "identity", "anonymise")] == 5
    assert figures[("removed", "", "", "subjects_deleted")] == 3
    assert figures[("removed", "", "", "fields_removed")] == 9
    assert figures[("erasures", "", month, "erased")] == 1
    assert figures[("holds", "bookkeeping", "2033-05", "fields")] == 1
    assert figures[("consent", "profiling", month, "given")] == 1
    assert figures[("consent", "profiling", month, "withdrawn")] == 1
    assert figures[("requests", "access", "", "open")] == 1
    assert figures[("requests", "access", "", "overdue")] == 0


def test_a_declined_purpose_holds_no_data(known: Flask, client: FlaskClient, officer: dict[str, str]) -> None:
    figures = _figures(client, officer)
    assert figures[("held", "profiling", "", "subjects")] == 1  # Bo, who withdrew; Anna declined
    assert figures[("held", "profiling", "contact", "fields")] == 1
    assert figures[("held", "profiling", "identity", "fields")] == 1
    assert sum(n for (section, purpose, _, _), n in figures.items() if (section, purpose) == ("age", "profiling")) == 2
    assert figures[("held", "loyalty_club", "", "subjects")] == 2


def test_a_period_without_the_sweeps_counts_none_of_them(known: Flask, client: FlaskClient,
                                                         officer: dict[str, str]) -> None:
    figures = _figures(client, officer, since="2020-01-01T00:00:00Z", until="2021-01-01T00:00:00Z")
    assert not [k for k in figures if k[0] in ("removed", "erasures", "consent")]
    assert figures[("held", "loyalty_club", "", "subjects")] == 2


def _pdf_text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(body)).pages)


def _get(client: FlaskClient, officer: dict[str, str], path: str, **query: str) -> bytes:
    r = client.get(path, query_string=query, headers=officer)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    return r.get_data()


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_every_format_carries_the_same_figures(known: Flask, client: FlaskClient, officer: dict[str, str],
                                               lang: str, tmp_path: Path) -> None:
    path = "/v1/reports/retention"
    until = (utcnow() + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = json.loads(_get(client, officer, path, format="json", until=until))
    rows = list(csv.DictReader(io.StringIO(_get(client, officer, path, format="csv", until=until).decode())))
    html = _get(client, officer, path, format="html", lang=lang, until=until).decode()
    pdf = _get(client, officer, path, format="pdf", lang=lang, until=until)
    expected = [{k: str(v) for k, v in f.items()} for f in report["figures"]]
    assert rows == expected
    with known.app_context():
        titles = purpose_titles(current().policy, lang)
    shown = [labelled(f, lang, titles) for f in expected]  # the page's words for the codes
    cells = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td class=\"n\">(\d+)</td></tr>", html)
    assert [dict(zip(["purpose", "category", "measure", "value"], c, strict=True)) for c in cells] == [
        {k: v for k, v in f.items() if k != "section"} for f in shown]
    text = " ".join(_pdf_text(pdf).split())
    for figure in shown:
        assert figure["value"] in text and figure["measure"] in text and figure["purpose"] in text
    heading = {"en": "Legal holds in force", "sv": "Gällande rättsliga bevarandekrav"}[lang]
    assert heading in html and heading in " ".join(text.split())
    assert 'role="img"' in html and "<title id=" in html and "<script" not in html


def test_the_swedish_page_shows_purpose_titles_and_measures_in_swedish(known: Flask, client: FlaskClient,
                                                                       officer: dict[str, str]) -> None:
    html = _get(client, officer, "/v1/reports/retention", format="html", lang="sv").decode()
    for words in ("Personliga erbjudanden", "Medlemskap i kundklubben", "registrerade", "uppgifter", "återkallade",
                  "givna", "förfaller inom 30 dagar", "identitet", "tillgång", "öppna"):
        assert f"<td>{words}</td>" in html
    for code in ("profiling", "loyalty_club", "subjects", "fields", "withdrawn", "given", "due_30d", "identity",
                 "access", "open"):
        assert f"<td>{code}</td>" not in html and f">{code} " not in html


def test_the_html_is_the_same_bytes_for_the_same_figures(known: Flask, client: FlaskClient,
                                                         officer: dict[str, str]) -> None:
    query = {"since": "2020-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z"}
    report = json.loads(_get(client, officer, "/v1/reports/retention", **query))
    assert retention_html(report, "sv").encode() == retention_html(json.loads(json.dumps(report)), "sv").encode()
    first, second = (_get(client, officer, "/v1/reports/retention", format="html", **query) for _ in range(2))
    as_of = re.compile(rb"As of: [^<]*")  # the moment of the request, the only thing that differs
    assert as_of.sub(b"", first) == as_of.sub(b"", second)


RENDER_PDF = ("import json, sys; from exports.reports.render import render_retention; "
              "sys.stdout.buffer.write(render_retention(json.load(open(sys.argv[1])), 'pdf', 'sv'))")


def test_the_pdf_is_the_same_bytes_for_the_same_figures(known: Flask, client: FlaskClient,
                                                        officer: dict[str, str], tmp_path: Path) -> None:
    report = json.loads(_get(client, officer, "/v1/reports/retention", until="2030-01-01T00:00:00Z"))
    first, second = (render_retention(report, "pdf", "sv") for _ in range(2))
    assert first.startswith(b"%PDF") and first == second
    (tmp_path / "report.json").write_text(json.dumps(report))
    elsewhere = subprocess.run([sys.executable, "-c", RENDER_PDF, str(tmp_path / "report.json")], check=True,
                               capture_output=True, env={**os.environ, "PYTHONHASHSEED": "7"}).stdout
    assert elsewhere == first  # another process, another hash seed, a second later
    dates = pypdf.PdfReader(io.BytesIO(first)).metadata
    as_of = re.sub(r"\D", "", report["as_of"][:19])  # to the second
    assert dates["/CreationDate"] == dates["/ModDate"] == f"D:{as_of}Z"


def test_one_pdf_page_rendered_to_png(known: Flask, client: FlaskClient, officer: dict[str, str],
                                      tmp_path: Path) -> None:
    pdfium = pytest.importorskip("pypdfium2")
    pdf = _get(client, officer, "/v1/reports/retention", format="pdf")
    page = pdfium.PdfDocument(pdf)[0]
    out = tmp_path / "retention-page-1.png"
    page.render(scale=1.5).to_pil().save(out)
    assert out.stat().st_size > 5000
    print(f"rendered page: {out}")


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_the_processing_record(app: Flask, client: FlaskClient, officer: dict[str, str], lang: str) -> None:
    record = json.loads(_get(client, officer, "/v1/reports/processing", lang=lang))
    assert record["controller"]["dpo_email"] == "dpo@exempelbutiken.se"
    loyalty = next(p for p in record["purposes"] if p["code"] == "loyalty_club")
    assert loyalty["legal_basis"] == "contract"
    assert loyalty["data_categories"] == ["contact", "identity", "location"]
    assert loyalty["transfers"] == [{"en": "none declared", "sv": "inga angivna"}[lang]]
    words = {"en": "Anonymised 730 days after the last activity", "sv": "Anonymiseras 730 dagar efter senaste"}
    assert loyalty["retention"].startswith(words[lang])
    html = _get(client, officer, "/v1/reports/processing", format="html", lang=lang).decode()
    text = " ".join(_pdf_text(_get(client, officer, "/v1/reports/processing", format="pdf", lang=lang)).split())
    for measure in record["security_measures"]:
        assert measure in html
    assert "AES-GCM" in text and "dpo@exempelbutiken.se" in text


def test_the_reports_need_the_officer_scope(client: FlaskClient, reader: dict[str, str]) -> None:
    assert client.get("/v1/reports/retention", headers=reader).status_code == 403
    assert client.get("/v1/reports/processing", headers=reader).status_code == 403


def test_the_cli_writes_each_report(known: Flask, tmp_path: Path) -> None:
    runner = known.test_cli_runner()
    out = tmp_path / "r.csv"
    result = runner.invoke(args=["reports", "retention", "--format", "csv", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("section,purpose,category,measure,value")
    pdf = tmp_path / "p.pdf"
    result = runner.invoke(args=["reports", "processing", "--format", "pdf", "--output", str(pdf), "--lang", "sv"])
    assert result.exit_code == 0, result.output
    assert pdf.read_bytes().startswith(b"%PDF")
