"""The reports as files: JSON, CSV (retention only), HTML with inline SVG charts, and PDF
(WeasyPrint, from the very same HTML). Every format carries the same figures."""
from __future__ import annotations

import csv
import functools
import io
import json
import warnings
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from exports.report_texts import LABELS, LANGUAGES, TEXTS
from exports.reports.retention import COLUMNS
from privacy.reports import SECTIONS

CONTENT_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8",
                 "pdf": "application/pdf"}


@functools.cache
def _env() -> Environment:
    return Environment(loader=PackageLoader("exports", "templates"), autoescape=True, trim_blocks=True,
                       lstrip_blocks=True, undefined=StrictUndefined)


def to_json(report: dict[str, Any]) -> bytes:
    return json.dumps(report, ensure_ascii=False, indent=2).encode()


def to_csv(report: dict[str, Any]) -> bytes:
    """One flat table: section, purpose, category, measure, value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows([figure[c] for c in COLUMNS] for figure in report["figures"])
    return out.getvalue().encode()


def retention_html(report: dict[str, Any], lang: str, titles: Mapping[str, str] | None = None) -> str:
    """The report as a printable page: per section a bar chart (SVG) and its table, every
    code in words (:func:`labelled`)."""
    by_section: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for figure in report["figures"]:
        by_section[figure["section"]].append(labelled(figure, _lang(lang), titles or {}))
    chart_rows = {name: [(" ".join(p for p in (f["purpose"], f["category"], f["measure"]) if p), f["value"])
                         for f in rows] for name, rows in by_section.items()}
    return _env().get_template("report_retention.html").render(
        report=report, lang=_lang(lang), t=TEXTS[_lang(lang)], sections=SECTIONS, by_section=by_section,
        chart_rows=chart_rows)


def labelled(figure: Mapping[str, Any], lang: str, titles: Mapping[str, str]) -> dict[str, Any]:
    """A figure as the page shows it: a purpose by its title (``titles``, from the policy),
    a measure, data category or request type in the words of :data:`LABELS`, anything
    else (a month, a legal hold) as it is."""
    words = LABELS[lang]
    return {**figure, "purpose": titles.get(figure["purpose"]) or words.get(figure["purpose"], figure["purpose"]),
            "category": words.get(figure["category"], figure["category"]),
            "measure": words.get(figure["measure"], figure["measure"])}


def processing_html(record: dict[str, Any], lang: str) -> str:
    return _env().get_template("report_processing.html").render(record=record, lang=_lang(lang),
                                                                 t=TEXTS[_lang(lang)])


def to_pdf(html: str, as_of: str | None = None) -> bytes:
    """The HTML printed by WeasyPrint (imported here: it loads Pango, which only PDFs need).

    Without libharfbuzz-subset0 (CI installs it) WeasyPrint subsets fonts with fontTools and
    warns that a future version will need the library: the PDF is the same either way.

    The same HTML gives the same bytes: the PDF's creation and modification dates are
    ``as_of`` (the report's own time, W3C format) or none, never the clock (WeasyPrint
    reads no ``SOURCE_DATE_EPOCH``), and it carries no random file identifier."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "HarfBuzz-Subset", DeprecationWarning)
        from weasyprint import HTML

    document = HTML(string=html).render()
    document.metadata.created = document.metadata.modified = as_of
    pdf: bytes = document.write_pdf(pdf_identifier=False)
    return pdf


def _lang(lang: str) -> str:
    return lang if lang in LANGUAGES else "en"


def render_retention(report: dict[str, Any], fmt: str, lang: str, titles: Mapping[str, str] | None = None
                     ) -> bytes:
    """The report as a file; JSON and CSV keep the codes, the page and the PDF show words
    (``titles``: the purposes' titles in ``lang``, :func:`exports.reports.retention.purpose_titles`)."""
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(report)
    html = retention_html(report, lang, titles)
    return html.encode() if fmt == "html" else to_pdf(html, report["as_of"])


def render_processing(record: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return to_json(record)
    return _processing_file(json.dumps(record, sort_keys=True), fmt)


@functools.lru_cache(maxsize=8)
def _processing_file(record: str, fmt: str) -> bytes:
    """The record changes only with the policy file: its page and PDF (a second or so of
    WeasyPrint) are made once per text and language."""
    data = json.loads(record)
    html = processing_html(data, data["language"])
    return html.encode() if fmt == "html" else to_pdf(html)
