"""The `chorus` command line."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Annotated, Any

import typer

from app.core import serving
from app.core.config import get_settings
from app.core.logging import configure_logging
from app.core.process import lower_priority, run_event_loop, tune_garbage_collection

cli = typer.Typer(
    help="Chorus: advocacy campaigns and petitions.", no_args_is_help=True, add_completion=False
)
log = logging.getLogger("chorus")
DEV_ADMIN_EMAIL = "admin@example.org"  # `chorus dev`'s console account


@cli.callback()
def _setup() -> None:
    settings = get_settings()
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date (alembic upgrade head)."""
    from app.core import migrations

    migrations.upgrade(get_settings().DATABASE_URL)
    typer.echo("database is up to date")


@cli.command("load-demo")
def load_demo() -> None:
    """Load the demo campaign (English, Korean, Ukrainian) if it is not there yet."""
    from app.core.db import make_engine, session_scope
    from app.demo.loader import load_demo as load

    engine = make_engine(get_settings().DATABASE_URL, pool_size=1)
    with session_scope(engine) as session:
        created = load(session)
    engine.dispose()
    typer.echo("demo campaign loaded" if created else "demo campaign already present")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Run the web server (pages and API). It queues e-mail; `chorus worker` sends it."""
    from app.core.config import PLACEHOLDER_SECRETS

    settings = get_settings()
    loopback = host in ("127.0.0.1", "localhost", "::1")
    if not loopback and settings.SECRET_KEY.get_secret_value() in PLACEHOLDER_SECRETS:
        # Anyone who knows the placeholder (it is in the source) could forge confirmations.
        typer.echo(
            f"Refusing to listen on {host} with the development SECRET_KEY: set "
            "SECRET_KEY (and ENVIRONMENT=production) first.",
            err=True,
        )
        raise typer.Exit(2)

    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several processes answer /metrics in turn: they share their counts through files
        # here (prometheus-client's multiprocess mode), set before any of them starts.
        metrics_dir = tempfile.mkdtemp(prefix="chorus-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        serving.run(
            "app.main:create_app",
            factory=True,
            **server_options(host=host, port=port, workers=workers, reload=reload),
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def server_options(*, host: str, port: int, workers: int, reload: bool = False) -> dict[str, Any]:
    """How `chorus serve` runs uvicorn; the benchmark's floor (bench/floor.py) runs the same.

    Client addresses come from X-Forwarded-For when the connection is from a trusted proxy
    (uvicorn's FORWARDED_ALLOW_IPS, loopback by default): the abuse controls need the real one.
    """
    return {
        "host": host,
        "port": port,
        "workers": workers,
        "reload": reload,
        "proxy_headers": True,
        "log_level": get_settings().LOG_LEVEL.lower(),
        # Chorus writes the access log itself (redacted, with request IDs: app/core/logging.py)
        # and uvicorn's own lines go through Chorus's handler (text or JSON, redacted).
        "access_log": False,
        "log_config": None,
    }


@cli.command()
def worker(
    once: Annotated[bool, typer.Option(help="Send what is due now, then exit.")] = False,
    health_port: Annotated[
        int | None,
        typer.Option(help="Serve /healthz and /metrics on this port (no web server needed)."),
    ] = None,
    health_host: Annotated[str, typer.Option(help="Interface for --health-port.")] = "127.0.0.1",
) -> None:
    """Send queued e-mail from the outbox, with retries. Run as many as you like."""
    run_event_loop(_run_worker(once=once, health_port=health_port, health_host=health_host))


@cli.command("worker-health")
def worker_health(
    port: Annotated[int, typer.Option(help="The worker's --health-port.")],
    host: Annotated[str, typer.Option(help="The worker's --health-host.")] = "127.0.0.1",
) -> None:
    """Exit 0 when the worker on that health port is making progress, 1 otherwise."""
    import urllib.error
    import urllib.request

    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (plain http, ours)
            typer.echo(answer.read().decode())
    except (urllib.error.URLError, OSError) as exc:
        typer.echo(f"worker unhealthy: {exc}", err=True)
        raise typer.Exit(1) from None


async def _run_worker(*, once: bool, health_port: int | None = None, health_host: str) -> None:
    from app.core.db import make_engine
    from app.email import devmailbox
    from app.email.smtp import mail_config
    from app.email.worker import OutboxWorker

    settings = get_settings()
    lower_priority(settings.WORKER_NICENESS)  # (before anything answers: --health-port)
    sink = None
    if settings.MAIL_SERVER:
        server, port = settings.MAIL_SERVER, settings.MAIL_PORT
    elif settings.dev_mailbox_enabled:
        sink = devmailbox.start_sink(settings.DEV_MAILBOX_DIR)
        server, port = sink.hostname, sink.port
        typer.echo(f"no MAIL_SERVER set: mail goes to the dev mailbox ({settings.DEV_MAILBOX_DIR})")
    else:
        typer.echo("MAIL_SERVER must be set outside development", err=True)
        raise typer.Exit(2)
    engine = make_engine(settings.DATABASE_URL, pool_size=settings.WORKER_CONCURRENCY)
    outbox = OutboxWorker(settings, engine, mail_config(settings, server=server, port=port))
    health = None
    if health_port is not None:
        from app.core import metrics
        from app.core.db import session_scope
        from app.email import outbox as outbox_queue

        def gauges() -> list[metrics.Gauge]:
            with session_scope(engine) as session:
                return outbox_queue.outbox_gauges(session)

        outbox.heartbeat.beat()  # (starting counts as progress)
        health = metrics.serve_health(health_host, health_port, outbox.heartbeat, gauges)
    tune_garbage_collection()
    try:
        if once:
            sent = await outbox.drain()
            typer.echo(f"handled {sent} message(s)")
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await outbox.run(stop)
    finally:
        if health is not None:
            health.shutdown()
        engine.dispose()
        if sink is not None:
            sink.stop()


@cli.command()
def dev(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Development: migrate, load the demo, and run the server with a mail worker."""
    import secrets

    from app.auth import service as auth_service
    from app.core.db import make_engine, session_scope

    migrate()
    load_demo()
    settings = get_settings()
    if settings.ENVIRONMENT != "development":
        typer.echo("`chorus dev` is for development (ENVIRONMENT=development).", err=True)
        raise typer.Exit(2)
    # A console account for the person at the keyboard: a new password at every start, shown
    # only here, so a development database copied elsewhere holds no known password.
    password = secrets.token_urlsafe(12)
    engine = make_engine(settings.DATABASE_URL, pool_size=1)
    with session_scope(engine) as session:
        auth_service.ensure_dev_admin(session, email=DEV_ADMIN_EMAIL, password=password)
    engine.dispose()
    env = {
        **os.environ,
        "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", f"http://{host}:{port}"),
    }
    worker_process = subprocess.Popen(  # noqa: S603 (our own executable)
        [sys.executable, "-m", "app.cli", "worker"], env=env
    )
    typer.echo("")
    typer.echo(f"  Demo petition: http://{host}:{port}/petitions/no-forced-return")
    if not settings.MAIL_SERVER:
        typer.echo(f"  Dev mailbox:   http://{host}:{port}/dev/mailbox")
    typer.echo(f"  API docs:      http://{host}:{port}/docs")
    typer.echo(f"  Console:       http://{host}:{port}/admin/  ({DEV_ADMIN_EMAIL} / {password})")
    typer.echo("")
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        serve(host=host, port=port, workers=1, reload=False)
    finally:
        worker_process.send_signal(signal.SIGTERM)
        try:
            worker_process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker_process.kill()


@cli.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="The admin's e-mail address (their login).")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="At least 12 characters; prompted when not given.",
        ),
    ],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Create an admin account (admins can then create organisers through the API)."""
    from app.auth import service as auth_service
    from app.auth.models import Role
    from app.core.addresses import check_email
    from app.core.db import make_engine, session_scope
    from app.core.errors import ProblemError

    if len(password) < 12:
        typer.echo("The password must have at least 12 characters.", err=True)
        raise typer.Exit(2)
    try:
        email = check_email(email)
    except ValueError as exc:
        typer.echo(f"Not a valid e-mail address: {exc}", err=True)
        raise typer.Exit(2) from None
    engine = make_engine(get_settings().DATABASE_URL, pool_size=1)
    try:
        with session_scope(engine) as session:
            auth_service.create_user(
                session, email=email, password=password, role=Role.admin, name=name
            )
    except ProblemError as exc:
        typer.echo(exc.title, err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo(f"admin {email} created")


def _register_domain_commands() -> None:
    from app.exports.commands import export_command
    from app.rights.commands import anonymise_command

    cli.command("export")(export_command)
    cli.command("anonymise")(anonymise_command)


_register_domain_commands()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
