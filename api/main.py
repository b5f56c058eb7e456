"""The ``privacy`` console script: Flask's CLI group on the app factory."""
from __future__ import annotations

import click
from flask.cli import FlaskGroup

from api import create_app


@click.group(cls=FlaskGroup, create_app=create_app, add_version_option=False,
             help="The privacy service: consent ledger, data-subject requests, retention.")
def main() -> None:
    """Every ``flask`` command (run, routes, shell, db) plus the project's own."""
