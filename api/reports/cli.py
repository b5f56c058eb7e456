"""``privacy reports retention|processing``: the officers' reports written to a file."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from flask.cli import with_appcontext

from api.services import current
from exports.reports.processing import processing_record
from exports.reports.render import render_processing, render_retention
from exports.reports.retention import purpose_titles, retention_report
from privacy.context import utcnow

OUTPUT = click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
                      help="the file to write")
LANG = click.option("--lang", type=click.Choice(["en", "sv"]), default="en", show_default=True)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """A time given without an offset is read as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


@click.group()
def reports() -> None:
    """Reports for the data protection officer."""


@reports.command("retention")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "html", "pdf"]), default="json",
              show_default=True)
@OUTPUT
@LANG
@click.option("--since", type=click.DateTime(), default=None, help="start of the period (UTC); default 365 days ago")
@click.option("--until", type=click.DateTime(), default=None, help="end of the period (UTC); default now")
@with_appcontext
def retention(fmt: str, output: Path, lang: str, since: dt.datetime | None, until: dt.datetime | None) -> None:
    """Retention figures: held, ages, falling due, removed, holds, consent per month, requests."""
    report = retention_report(current(), utcnow(), _aware(since), _aware(until))
    output.write_bytes(render_retention(report, fmt, lang, purpose_titles(current().policy, lang)))
    click.echo(f"wrote {output} ({len(report['figures'])} figures)")


@reports.command("processing")
@click.option("--format", "fmt", type=click.Choice(["json", "html", "pdf"]), default="json", show_default=True)
@OUTPUT
@LANG
@with_appcontext
def processing(fmt: str, output: Path, lang: str) -> None:
    """The record of processing activities (GDPR Art. 30(1)) from the policy file."""
    output.write_bytes(render_processing(processing_record(current().policy, lang), fmt))
    click.echo(f"wrote {output}")
