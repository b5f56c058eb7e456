"""The ``privacy`` command: Flask's CLI (run, routes, shell, db ...) plus our own commands."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from api.demo import load_demo
from api.jobs.registry import SHELL_JOBS
from api.reports.cli import reports
from api.services import current, unit_of_work
from api.settings import replace_instance_master_key
from privacy.apikeys import create_key, list_keys, parse_scopes, revoke_key
from privacy.context import utcnow
from privacy.crypto.keys import Crypto, parse_master_key
from privacy.crypto.rotation import rotate_master
from privacy.errors import ServiceError
from privacy.ledger import verification
from privacy.retention.sweep import RetentionService
from privacy.tasks.reconcile import DRIFT_KINDS, Reconciler
from privacy.tasks.service import TaskService
from retention import stopping
from retention.leader import Leadership
from retention.scheduler import all_jobs, build_runner, build_scheduler
from retention.schedules import listing

CLI_ACTOR = "cli:" + (os.environ.get("SUDO_USER") or os.environ.get("USER") or "operator")


def _fail(exc: ServiceError) -> None:
    raise click.ClickException(exc.message)


@click.group()
def keys() -> None:
    """API keys and the master key."""


@keys.command("create")
@click.option("--name", required=True, help="who the key is for, e.g. signup-web")
@click.option("--scopes", required=True, help="comma-separated: consent:write, consent:read, requests:manage, admin")
@with_appcontext
def keys_create(name: str, scopes: str) -> None:
    """Create an API key; the key is printed once, alone on the last line."""
    try:
        with unit_of_work() as session:
            key, token = create_key(session, name, parse_scopes(scopes), CLI_ACTOR, utcnow())
    except ServiceError as exc:
        _fail(exc)
    click.echo(f"created key {key.id} ({key.name}) with scopes {key.scopes}; it is shown only once:", err=True)
    click.echo(token)


@keys.command("list")
@with_appcontext
def keys_list() -> None:
    """List keys (never the tokens)."""
    for key in list_keys(current().database.session()):
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        click.echo(f"{key.id}  {key.prefix}…  {key.name:<24} {key.scopes:<40} {state}")


@keys.command("revoke")
@click.argument("key")
@with_appcontext
def keys_revoke(key: str) -> None:
    """Revoke a key by id or name."""
    try:
        with unit_of_work() as session:
            revoked = revoke_key(session, key, CLI_ACTOR, utcnow())
    except ServiceError as exc:
        _fail(exc)
    click.echo(f"revoked {revoked.id} ({revoked.name})")


@keys.command("rotate-master")
@click.option("--new-key-env", required=True, help="name of the environment variable holding the new key")
@click.option("--batch-size", default=500, show_default=True)
@with_appcontext
def keys_rotate_master(new_key_env: str, batch_size: int) -> None:
    """Re-wrap every data key under a new master key (resumable); prints the count."""
    value = os.environ.get(new_key_env)
    if not value:
        raise click.ClickException(f"environment variable {new_key_env} is empty or not set")
    try:
        new = Crypto(parse_master_key(value))
    except ValueError as exc:
        raise click.ClickException(f"{new_key_env}: {exc}") from exc
    old = current().crypto
    now = utcnow()
    try:
        with click.progressbar(length=0, label="re-wrapping data keys", file=sys.stderr) as bar:
            moved = rotate_master(current().database.session(), old, new, now, batch_size, progress=bar.update,
                                  actor=CLI_ACTOR)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    instance = Path(current_app.instance_path)
    if not os.environ.get("PRIVACY_MASTER_KEY") and (instance / "master.key").exists():
        click.echo(f"wrote the new key into {replace_instance_master_key(instance, value)}", err=True)
    else:
        click.echo(f"now set PRIVACY_MASTER_KEY to the value of {new_key_env}; the old key is refused", err=True)
    click.echo(moved)


@click.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@with_appcontext
def audit_verify() -> None:
    """Check the hash chains of the consent ledger and the audit log (exit 1 when broken)."""
    result = verification(current().database.session())
    if result["ok"]:
        click.echo("ok (" + ", ".join(f"{r['chain']}: {r['entries']} entries" for r in result["chains"]) + ")")
        return
    click.echo(json.dumps(result["first_broken"]))
    sys.exit(1)


@click.group()
def connectors() -> None:
    """Connected systems: their state, a connection check, reconciliation with the ledger."""


@connectors.command("list")
@with_appcontext
def connectors_list() -> None:
    """Each connected system: name, type, operations, tasks waiting and failed."""
    rows = TaskService(current()).connectors()
    if not rows:
        click.echo("no connected systems in the policy file")
    for row in rows:
        click.echo(f"{row['name']:<20} {row['type']:<12} {','.join(row['operations']) or '-':<50} "
                   f"waiting {row['waiting']}  failed {row['failed']}")


@connectors.command("test")
@click.argument("name")
@with_appcontext
def connectors_test(name: str) -> None:
    """Check that a connected system answers with the configured credentials (exit 1 on failure)."""
    try:
        result = TaskService(current()).test(name)
    except ServiceError as exc:
        _fail(exc)
    if result["ok"]:
        click.echo(f"ok: {result['detail']}")
        return
    click.echo(result["detail"])
    sys.exit(1)


@connectors.command("reconcile")
@click.option("--repair", is_flag=True, help="plan a consent task (withdrawn) for each person a system has "
                                              "subscribed without our consent; opt-ins are never pushed")
@with_appcontext
def connectors_reconcile(repair: bool) -> None:
    """Compare each system's marketing opt-in state with the ledger: each drift, then counts."""
    ctx = current()
    report = Reconciler(ctx).run(repair, ctx.clock(), actor=CLI_ACTOR)
    for name, system in report.systems.items():
        for drift in system.drifts:
            click.echo(f"{name} {drift['subject_id']} {drift['kind']}")
    for name, reason in report.skipped.items():
        click.echo(f"{name}: not reconciled ({reason})")
    for name, system in report.systems.items():
        kinds = ", ".join(f"{kind} {system.counts[kind]}" for kind in DRIFT_KINDS)
        click.echo(f"{name}: checked {system.checked}, held {system.held}, {kinds}, errors {system.errors}, "
                   f"repaired {system.repaired}")
        if len(system.drifts) < sum(system.counts.values()):
            click.echo(f"{name}: only the first {len(system.drifts)} drifts are listed")
        for reason, count in system.error_reasons.items():
            click.echo(f"{name}: error x{count}: {reason}")
        if system.stopped:
            click.echo(f"{name}: stopped: {system.stopped}")
    totals = report.totals()
    click.echo("total: " + ", ".join(f"{key} {value}" for key, value in totals.items()) + f" (run {report.id})")


@click.group()
def retention() -> None:
    """Retention rules and minimisation."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="change nothing; list what would go")
@click.option("--as-of", type=click.DateTime(), default=None, help="the date to sweep as of (UTC; default now)")
@click.option("--batch-size", default=500, show_default=True)
@with_appcontext
def retention_run(dry_run: bool, as_of: dt.datetime | None, batch_size: int) -> None:
    """Sweep every subject against the purposes' retention rules; prints the summary."""
    ctx = current()
    when = as_of.replace(tzinfo=dt.UTC) if as_of else ctx.clock()
    with click.progressbar(length=0, label="retention sweep (batches)", file=sys.stderr) as bar:
        summary = RetentionService(ctx).run(when, dry_run, CLI_ACTOR, batch_size=batch_size, progress=bar.update)
    for item in summary.get("would_go", []):
        click.echo(f"would {item['action']} {item['subject_id']} ({item['purpose']}): {', '.join(item['fields'])}")
    if summary.get("would_go_total", 0) > len(summary.get("would_go", [])):
        click.echo(f"only the first {len(summary['would_go'])} of {summary['would_go_total']} are listed")
    click.echo(json.dumps({k: v for k, v in summary.items() if k != "would_go"}, sort_keys=True))


def _print_jobs() -> None:
    """One line per scheduled job: id, schedule, newest run and its outcome, next run."""
    for job in listing(current(), all_jobs(SHELL_JOBS), current().clock()):
        last = f"{job['last_run_at']} {job['last_outcome']}" if job["last_run_at"] else "never run"
        if job["last_count"] is not None:
            last += f" ({job['last_count']})"
        if job["last_error"]:
            last += f": {job['last_error']}"
        click.echo(f"{job['id']:<24} {job['schedule']:<36} last {last:<44} next {job['next_run_at']}")


@click.command("jobs")
@with_appcontext
def jobs() -> None:
    """List the scheduled jobs: schedule, last run and its outcome, next run."""
    _print_jobs()


@click.command("scheduler")
@click.option("--list", "list_only", is_flag=True, help="list the jobs (as 'privacy jobs' does) and exit")
@with_appcontext
def scheduler(list_only: bool) -> None:
    """Run the scheduled jobs and the connected systems' tasks in the foreground.

    Every scheduler process runs tasks; on PostgreSQL only the one holding the leader lock
    runs the jobs, and each run is claimed in ``job_runs`` first, so it runs once. On
    SIGTERM (or Ctrl-C) the job and the tasks in hand finish and are recorded first. A task
    of a process killed outright is claimed again when its lease runs out.
    """
    if list_only:
        _print_jobs()
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per run is noise
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    leadership = Leadership(app.config["SQLALCHEMY_DATABASE_URI"],
                            poll_s=float(os.environ.get("PRIVACY_LEADER_POLL_S") or 3))
    sched = build_scheduler(app, extra=SHELL_JOBS, leadership=leadership)
    lease = os.environ.get("PRIVACY_TASK_LEASE_S")
    runner = build_runner(app, lease_s=float(lease) if lease else None)
    leadership.start()
    dispatcher = runner.start()
    signal.signal(signal.SIGTERM, lambda *_: _stop(sched))
    click.echo("scheduler running: " + ", ".join(job.id for job in sched.get_jobs())
               + f"; tasks for {len(runner.connectors)} connected systems"
               + ("; leading the jobs" if leadership.leading.is_set() else "; waiting to lead the jobs"), err=True)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        sched.start()
    _stop(sched)
    leadership.stop()
    runner.stop()
    dispatcher.join()


def _stop(sched: Any) -> None:
    """Ask long jobs to stop between batches, and end the scheduler after the job in hand."""
    stopping.stopping.set()
    if sched.running:
        sched.shutdown(wait=True)


@click.command("demo")
@click.option("--members", default=60, show_default=True)
@with_appcontext
def demo(members: int) -> None:
    """Load demo members (idempotent) and print fresh demo API keys."""
    count, tokens, samples = load_demo(members)
    click.echo(f"{count} demo members recorded. Demo API keys (new on every run):")
    for name, token in tokens.items():
        click.echo(f"  {name:<16} {token}")
    click.echo("Members to try: " + ", ".join(samples))
    click.echo("Data-subject requests wait in the queue (GET /v1/requests with the demo-officer key); "
               "the scheduler mails their verification links to the mail drop.")


def register_commands(app: Flask) -> None:
    """Add the project's commands to ``app.cli`` (so ``privacy`` and tests see them)."""
    for command in (keys, audit, connectors, scheduler, jobs, demo, retention, reports):
        app.cli.add_command(command)
