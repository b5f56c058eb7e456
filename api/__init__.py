"""The application shell: ``create_app``, blueprints, error mapping, CLI group."""
from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import Migrate
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError, ProgrammingError
from werkzeug.middleware.proxy_fix import ProxyFix

from api import limits
from api.audit.routes import blp as audit_blp
from api.cli import register_commands
from api.connectors.routes import blp as connectors_blp
from api.consents.routes import blp as consents_blp
from api.db import db
from api.docs import Api
from api.errors import register_error_handlers
from api.health.routes import blp as health_blp
from api.jobs.routes import blp as jobs_blp
from api.jsonio import FastJSONProvider
from api.logs import install_log_guards
from api.purposes.routes import blp as purposes_blp
from api.receipts.routes import blp as receipts_blp
from api.reports.routes import blp as reports_blp
from api.requests.routes import blp as requests_blp
from api.retention.routes import blp as retention_blp
from api.schema_fields import StrictBoolean
from api.settings import load_settings, master_key_from_instance
from api.subjects.routes import blp as subjects_blp
from exports.store import PackageStore
from privacy.connectors.base import ConfigError
from privacy.connectors.registry import build_all
from privacy.context import PrivacyContext, utcnow
from privacy.crypto.keys import Crypto, parse_master_key
from privacy.errors import Unavailable
from privacy.mail.mailer import mailer_from_config
from privacy.policy.catalogue import sync_from_policy
from privacy.policy.file import PolicyError, load_policy
from privacy.storage.database import Database
from privacy.storage.postgres import check_at_checkout, checked_at_checkout
from privacy.storage.sqlite import configure_engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "privacy" / "storage" / "migrations"
MAX_BODY_BYTES = 16 * 1024 * 1024
log = logging.getLogger(__name__)


class PrivacyFlask(Flask):
    """Flask, remembering which of its hooks and views are coroutine functions.

    Flask asks ``inspect.iscoroutinefunction`` of every hook and view on every request
    (ten times a sign-up); the answer for a registered function never changes. Functions
    are remembered weakly, so a callable made for one request is not kept.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_forms: weakref.WeakKeyDictionary[Callable[..., Any], Callable[..., Any]] = (
            weakref.WeakKeyDictionary())

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._sync_forms[func]
        except KeyError:
            pass
        except TypeError:  # not weakly referable (a bound method made on the spot, say)
            return super().ensure_sync(func)
        form = super().ensure_sync(func)
        self._sync_forms[func] = form
        return form


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application: defaults, then environment, then ``test_config``."""
    settings = load_settings(os.environ, test_config)
    app = PrivacyFlask(__name__, instance_path=str(settings["INSTANCE_DIR"]))
    if settings["PROXY_HOPS"]:  # the client's address (rate limits) from the proxies' X-Forwarded-For
        hops = settings["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    _configure(app, settings)
    app.extensions["privacy"] = _context(app, settings)
    Migrate(app, db, directory=str(MIGRATIONS))

    api = Api(app)
    api.register_field(StrictBoolean, "boolean", None)
    for blp in (health_blp, purposes_blp, consents_blp, subjects_blp, receipts_blp, audit_blp, requests_blp,
                connectors_blp, jobs_blp, retention_blp, reports_blp):
        api.register_blueprint(blp)
    register_error_handlers(app)
    register_commands(app)
    install_log_guards()
    ready = _refuse_until_ready(app)
    limits.init_app(app)  # after the readiness hook: a limit keyed by blind index needs the keyring
    _boot(app, ready)
    return app


def _configure(app: Flask, settings: Mapping[str, Any]) -> None:
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings["DATABASE_URL"],
        # A server connection can drop between requests; a SQLite file cannot. PostgreSQL
        # through psycopg is checked at checkout without a round trip (privacy.storage.postgres);
        # another server database pays for SQLAlchemy's ping at every checkout.
        # hide_parameters: a logged database error shows the statement, never its values.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": not settings["DATABASE_URL"].startswith("sqlite")
                                   and not checked_at_checkout(settings["DATABASE_URL"]),
                                   "hide_parameters": True},
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        API_TITLE="Privacy service",
        API_VERSION="1.0",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"components": {"securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "description": "an API key"}}}},
        PRIVACY=settings,
    )
    app.json = FastJSONProvider(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)


def _context(app: Flask, settings: Mapping[str, Any]) -> PrivacyContext:
    """What every service of this application is built from (see ``api.services``)."""
    master = settings["MASTER_KEY"] or master_key_from_instance(Path(app.instance_path))
    try:
        crypto = Crypto(parse_master_key(master))
    except ValueError as exc:
        raise RuntimeError(f"PRIVACY_MASTER_KEY: {exc}") from exc
    mailer = mailer_from_config(settings["SMTP_URL"], Path(app.instance_path) / "mail", settings["MAIL_FROM"])
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
        check_at_checkout(db.engine)
        database = Database(db.engine, db.session)
    policy = load_policy(settings["POLICY_FILE"])
    try:  # each connector checks its settings now, so a bad entry stops the start naming its key
        for built in build_all(policy).values():
            built.close()
    except ConfigError as exc:
        raise PolicyError(policy.source, [str(exc)]) from exc
    for connector, variables in policy.missing_secrets(os.environ).items():
        log.warning("connector %s: environment variable %s is not set; its tasks cannot run until it is",
                    connector, ", ".join(variables))
    return PrivacyContext(
        database=database, crypto=crypto, policy=policy, mailer=mailer,
        public_url=settings["PUBLIC_URL"], packages=PackageStore(Path(app.instance_path) / "exports"))


def _refuse_until_ready(app: Flask) -> threading.Event:
    """Answer 503 ``not_ready`` until :func:`bootstrap` has run once on a reachable, migrated database."""
    ready = threading.Event()
    lock = threading.Lock()

    @app.before_request
    def _ensure_ready() -> None:
        if ready.is_set():
            return
        with lock:
            try:
                booted = ready.is_set() or bootstrap(app)
            except (OperationalError, ProgrammingError) as exc:
                db.session.rollback()
                raise Unavailable("the database does not answer", code="not_ready") from exc
            if not booted:
                raise Unavailable("the database schema is missing: run 'privacy db upgrade'", code="not_ready")
            ready.set()

    return ready


def _boot(app: Flask, ready: threading.Event) -> None:
    """Bootstrap at start when the database is there; a refused master key stops the start."""
    with app.app_context():
        try:
            if bootstrap(app):
                ready.set()
        except (OperationalError, ProgrammingError):
            log.warning("database not reachable at start-up; will retry on the first request")
            db.session.rollback()
        except Exception:
            db.session.remove()
            db.engine.dispose()
            raise


def bootstrap(app: Flask) -> bool:
    """Once the schema exists: check the master key, create the keyring, sync the policy.

    Returns False while the schema is missing. Raises MasterKeyRefused for a wrong or
    retired master key, which stops the service rather than serve what it cannot read.
    """
    if not inspect(db.engine).has_table("chain_heads"):
        return False
    ctx: PrivacyContext = app.extensions["privacy"]
    now = utcnow()
    ctx.crypto.bootstrap(db.session(), now)
    sync_from_policy(db.session(), ctx.policy, now)
    db.session.remove()
    return True
