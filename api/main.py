"""The ``privacy`` console script: Flask's CLI group on the app factory."""
from __future__ import annotations

from typing import Any

import click
from flask.cli import FlaskGroup
from sqlalchemy.exc import OperationalError, ProgrammingError

from api import create_app

NO_SCHEMA = "the database has no schema; run `privacy db upgrade`"


def missing_table(exc: BaseException) -> bool:
    """A statement failed on a table that does not exist: SQLite's ``no such table``,
    PostgreSQL's ``undefined_table`` (SQLSTATE 42P01)."""
    orig = getattr(exc, "orig", None)
    return "no such table" in str(orig) or getattr(orig, "sqlstate", None) == "42P01"


class PrivacyGroup(FlaskGroup):
    """Flask's group; a command run on a database that was never migrated ends with one
    line saying so (exit 1), not a traceback from the first missing table."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (OperationalError, ProgrammingError) as exc:
            if missing_table(exc):
                raise click.ClickException(NO_SCHEMA) from None
            raise


@click.group(cls=PrivacyGroup, create_app=create_app, add_version_option=False,
             help="The privacy service: consent ledger, data-subject requests, retention.")
def main() -> None:
    """Every ``flask`` command (run, routes, shell, db) plus the project's own."""
