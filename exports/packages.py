"""Access (Art. 15) and portability (Art. 20) packages: one zip, written as a stream.

The zip holds ``index.html`` (a readable page in the customer's language), ``data.json``
(everything, machine-readable) and one CSV file per category. Every entry is written
piece by piece into ``zf.open(name, "w")``, so the memory used stays the same however
long the consent history is; the output may be unseekable (a :class:`SealedWriter`).

The consent history, the one list that grows without bound, may be any iterable (a
generator over a database query, say). It is consumed exactly once, before the zip is
begun: each event is rendered straight away as a data.json item, a CSV row and an HTML
table row, into three anonymous temporary files sealed under a key that lives only in
memory, which are then copied into the zip. Nothing is logged.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import functools
import io
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from jinja2 import Environment, PackageLoader, Template, Undefined
from markupsafe import Markup, escape

from exports.package_texts import TEXTS
from privacy.crypto.sealed_files import SealedWriter, new_file_key, open_sealed
from privacy.languages import LANGUAGES, in_language
from privacy.requests.fulfilment import GIVEN_BY_YOU

FORMAT = "privacy-access-package/1"
KINDS = ("access", "portability")
_TEXT_CHUNK = 16 * 1024  # characters handed to the zip entry at a time
_SPOOL_CHUNK = 16 * 1024  # plaintext per sealed segment of a history spool
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_JSON = json.JSONEncoder(ensure_ascii=False)  # one encoder: json.dumps with options makes one per call
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "subject.csv": ("name", "category", "value", "purposes", "source", "label"),
    "consents.csv": ("purpose", "status", "notice_version", "recorded_at", "granted_at"),
    "consent_history.csv": ("seq", "purpose", "action", "status", "notice_version", "text_hash", "source",
                            "recorded_at"),
    "requests.csv": ("id", "type", "status", "received_at", "due_at", "completed_at"),
    "purposes.csv": ("code", "name", "legal_basis", "fields", "recipients", "retention_days", "retention_after",
                     "retention_action"),
}
FILES = ("index.html", "data.json", *CSV_COLUMNS)

@dataclass
class PackageContent:
    """What goes into a package; ``data`` becomes data.json (after the header keys).

    ``data["consent_history"]`` may be any iterable of event dicts and is consumed once.
    Everything else in ``data`` must be JSON-serialisable as it is.
    """

    kind: str  # access | portability
    language: str  # sv | en (anything else: en)
    generated_at: dt.datetime
    request: dict[str, Any]
    data: dict[str, Any]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"package kind must be one of {', '.join(KINDS)}")


def package_language(code: str | None) -> str:
    """``sv``, ``sv-SE`` → ``sv``; anything that is not a package language → ``en``."""
    short = (code or "").strip().lower()[:2]
    return short if short in LANGUAGES else "en"


def write_package(out: BinaryIO, content: PackageContent) -> None:
    """Write the package zip to ``out`` (left open), streaming: memory does not grow with the data."""
    lang = package_language(content.language)
    page = _Page(content, lang)
    data = content.data
    when = max(content.generated_at.timetuple()[:6], (1980, 1, 1, 0, 0, 0))
    document = {"format": FORMAT, "kind": content.kind, "generated_at": content.generated_at.isoformat(),
                "request": content.request, **data}
    with _HistorySpool(page.history_row) as history:
        history.consume(data.get("consent_history") or ())
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            with _text_entry(zf, "index.html", when, "utf-8") as text:
                text.writelines(_template().generate(page.context(history)))
            with _text_entry(zf, "data.json", when, "utf-8", errors="backslashreplace") as text:
                text.writelines(_json_pieces(document, history))
            for name, rows in _csv_tables(data, lang):
                with _text_entry(zf, name, when, "utf-8-sig") as text:
                    writer = csv.writer(text)
                    writer.writerow(CSV_COLUMNS[name])
                    if rows is None:
                        text.writelines(history.replay("csv"))
                    else:
                        writer.writerows(csv_row(row, CSV_COLUMNS[name]) for row in rows)


# --- zip entries ------------------------------------------------------------------------


@contextlib.contextmanager
def _text_entry(zf: zipfile.ZipFile, name: str, when: tuple[int, ...], encoding: str,
                errors: str = "replace") -> Iterator[_Batched]:
    info = zipfile.ZipInfo(name, date_time=when)  # type: ignore[arg-type]
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    # errors: a lone surrogate (possible in a system's JSON answer) must not stop the package.
    with io.TextIOWrapper(zf.open(info, "w"), encoding=encoding, errors=errors, newline="") as text:
        batched = _Batched(text)
        yield batched
        batched.flush()


class _Batched:
    """Collects small pieces of text and passes them on ~16 K characters at a time (far fewer calls)."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self._parts: list[str] = []
        self._size = 0

    def write(self, piece: str) -> int:
        self._parts.append(piece)
        self._size += len(piece)
        if self._size >= _TEXT_CHUNK:
            self.flush()
        return len(piece)

    def writelines(self, pieces: Iterable[str]) -> None:
        for piece in pieces:
            self.write(piece)

    def flush(self) -> None:
        self._text.write("".join(self._parts))
        self._parts.clear()
        self._size = 0


class _HistorySpool:
    """The consent history, consumed once and written at once in the three forms the package
    shows it in: data.json items, CSV rows and HTML table rows.

    Each form goes to an anonymous temporary file sealed under a key that lives only in
    memory, so no personal data lies in clear on disk even for the moments a package takes,
    and a form is replayed by copying it: nothing is decoded or rendered twice.
    """

    FORMS = (("json", "backslashreplace"), ("csv", "replace"), ("html", "replace"))

    def __init__(self, html_row: Callable[[dict[str, Any]], str]) -> None:
        self._html_row = html_row
        self._key = new_file_key()
        self._files = contextlib.ExitStack()
        self._spools: dict[str, BinaryIO] = {}
        self.count = 0

    def __enter__(self) -> _HistorySpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._files.close()

    def consume(self, events: Iterable[dict[str, Any]]) -> None:
        with contextlib.ExitStack() as writing:
            streams = {}
            for form, errors in self.FORMS:
                spool = self._spools[form] = self._files.enter_context(tempfile.TemporaryFile())
                sealed = writing.enter_context(SealedWriter(spool, self._key, f"package-spool|{form}",
                                                            chunk_size=_SPOOL_CHUNK))
                streams[form] = writing.enter_context(io.TextIOWrapper(cast(BinaryIO, sealed), encoding="utf-8",
                                                                       errors=errors, newline=""))
            to_json, to_html = streams["json"].write, streams["html"].write
            to_csv = csv.writer(streams["csv"]).writerow
            columns = CSV_COLUMNS["consent_history.csv"]
            for event in events:
                to_json((",\n  " if self.count else "\n  ") + _JSON.encode(event))
                to_csv(csv_row(event, columns))
                to_html(self._html_row(event))
                self.count += 1

    def replay(self, form: str) -> Iterator[str]:
        """One form as text, in pieces of about one sealed segment."""
        spool = self._spools[form]
        spool.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        for segment in open_sealed(spool, self._key, f"package-spool|{form}"):
            yield decoder.decode(segment)
        yield decoder.decode(b"", final=True)


# --- data.json --------------------------------------------------------------------------


def _json_pieces(document: dict[str, Any], history: _HistorySpool) -> Iterator[str]:
    """data.json piece by piece: one top-level key per line, one list item per line."""
    dumps = _JSON.encode
    yield "{"
    for n, (key, value) in enumerate(document.items()):
        yield ("," if n else "") + "\n" + dumps(key) + ": "
        if key == "consent_history":
            yield "["
            yield from history.replay("json")
            yield "\n]" if history.count else "]"
        elif isinstance(value, list | tuple):
            opened = "["
            for item in value:
                yield opened + "\n  " + dumps(item)
                opened = ","
            yield "[]" if opened == "[" else "\n]"
        else:
            yield dumps(value)
    yield "\n}\n"


# --- CSV --------------------------------------------------------------------------------


def csv_row(row: dict[str, Any], columns: Sequence[str]) -> list[str]:
    return [csv_cell(row.get(column)) for column in columns]


def csv_cell(value: Any) -> str:
    """One CSV cell: lists joined with ";", and text that a spreadsheet would run as a
    formula (starting with = + - @, a tab or a CR) prefixed with a single quote."""
    if type(value) is str:
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)  # a number is never a formula, and -5 stays -5
    text = ";".join(_plain(item) for item in value) if isinstance(value, list | tuple) else _plain(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return _COMPACT_JSON.encode(value)
    return str(value)


def _csv_tables(data: dict[str, Any], lang: str) -> Iterator[tuple[str, list[dict[str, Any]] | None]]:
    """Each CSV file with its rows; ``None`` for the consent history, which comes from its spool."""
    yield "subject.csv", (data.get("subject") or {}).get("fields") or []
    yield "consents.csv", data.get("consents") or []
    yield "consent_history.csv", None
    yield "requests.csv", data.get("requests") or []
    yield "purposes.csv", [
        {**purpose, "name": _purpose_name(purpose, lang),
         "retention_days": (purpose.get("retention") or {}).get("period_days"),
         "retention_after": (purpose.get("retention") or {}).get("after"),
         "retention_action": (purpose.get("retention") or {}).get("action")}
        for purpose in data.get("purposes") or []
    ]


def _purpose_name(purpose: dict[str, Any], lang: str) -> str:
    names = purpose.get("name")
    if isinstance(names, dict):
        return in_language(names, lang, str(next(iter(names.values()), None) or purpose.get("code")))
    return str(names or purpose.get("code") or "")


# --- index.html -------------------------------------------------------------------------


@functools.cache
def _template() -> Template:
    env = Environment(loader=PackageLoader("exports", "templates"), autoescape=True, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["shown"] = _shown
    env.filters["when"] = _when
    return env.get_template("package_index.html")


class _Page:
    """What index.html needs beyond the data: the language's words and the purposes' names."""

    def __init__(self, content: PackageContent, lang: str) -> None:
        self.content, self.lang, self.texts = content, lang, TEXTS[lang]
        self.names = {p.get("code"): _purpose_name(p, lang) for p in content.data.get("purposes") or []}
        labels = content.data.get("field_labels")
        self.labels: dict[str, str] = labels if isinstance(labels, dict) else {}

    def word(self, kind: str, code: Any) -> str:
        """A code in words (``word("basis", "consent")`` → "samtycke"), else the code itself."""
        text = self.texts.get(f"{kind}.{code}")
        return _shown(code) if text is None else text

    def field_names(self, names: Any) -> str:
        """Field names as the customer reads them (``field_labels``), else as they are."""
        if not isinstance(names, list | tuple):
            return _shown(names)
        return ", ".join(self.labels.get(n) or _shown(n) for n in names) or _shown(None)

    def purpose_name(self, code: Any) -> str:
        return self.names.get(code) or _shown(code)

    def purpose_names(self, codes: Any) -> str:
        if not isinstance(codes, list | tuple):
            return self.purpose_name(codes)
        return ", ".join(self.purpose_name(code) for code in codes) or _shown(None)

    def retention(self, rule: dict[str, Any] | None) -> str:
        if not rule:
            return _shown(None)
        days = self.texts["days"].format(n=rule.get("period_days"))
        return self.texts["retention.summary"].format(days=days, after=self.word("after", rule.get("after")),
                                                      action=self.word("then", rule.get("action")))

    def history_row(self, event: dict[str, Any]) -> str:
        """One row of the history table, escaped here: the history may be long, so it is
        rendered once while spooled (columns as in the template's table head)."""
        cells = (_shown(event.get("seq")), _when(event.get("recorded_at")), self.purpose_name(event.get("purpose")),
                 self.word("action", event.get("action")), self.word("status", event.get("status")),
                 _shown(event.get("notice_version")), _shown(event.get("source")), _shown(event.get("text_hash")))
        return "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>\n"

    def context(self, history: _HistorySpool) -> dict[str, Any]:
        data = self.content.data
        systems = [(name, json.dumps(answer, ensure_ascii=False, indent=2, default=str))
                   for name, answer in (data.get("systems") or {}).items()]
        return {
            "lang": self.lang, "t": self.texts, "kind": self.content.kind, "word": self.word,
            "source_codes": {GIVEN_BY_YOU: "given_by_you"},
            "purpose_name": self.purpose_name, "purpose_names": self.purpose_names, "retention": self.retention,
            "field_names": self.field_names,
            "generated_at": self.content.generated_at.isoformat(), "request": self.content.request,
            "fields": (data.get("subject") or {}).get("fields") or [], "consents": data.get("consents") or [],
            # Rows escaped by history_row and kept in a sealed (so unaltered) spool: safe as markup.
            "history_rows": map(Markup, history.replay("html")), "history_count": history.count,
            "requests": data.get("requests") or [], "purposes": data.get("purposes") or [],
            "recipients": data.get("recipients") or [], "retention_rules": data.get("retention") or [],
            "sources": data.get("sources") or [], "systems": systems,
        }


def _shown(value: Any) -> str:
    """A value as text on the page: nothing as a dash, lists comma-joined, objects as JSON."""
    if value is None or value == "" or isinstance(value, Undefined):
        return "–"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(item) for item in value) or "–"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_plain(item)}" for key, item in value.items()) or "–"
    return _plain(value)


def _when(value: Any) -> str:
    """An ISO timestamp as ``2026-05-01 10:00 UTC``; anything else unchanged."""
    if not isinstance(value, str):
        return _shown(value)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if len(value) <= 10:
        return parsed.date().isoformat()
    offset = parsed.utcoffset()
    zone = "" if offset is None else " UTC" if not offset else parsed.strftime(" %z")
    return parsed.strftime("%Y-%m-%d %H:%M") + zone
