"""`chorus anonymise`: remove signers' personal data once a petition has been closed long enough."""

from __future__ import annotations

from typing import Annotated

import typer

from app.core.config import get_settings


def anonymise_command(
    days: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Anonymise signatures of petitions closed (or archived) more than this many "
            "days ago. Default: DATA_RETENTION_DAYS.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be anonymised.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Rows changed per transaction.")
    ] = 1000,
) -> None:
    """Anonymise the signatures of petitions closed longer than the retention period.

    Names, e-mail addresses and postcodes are removed; the rows, their country and dates stay,
    so counts and per-country totals stay right. Donors of gifts that ended before the same
    cutoff lose their name and address too (the amounts stay). Safe to run again (e.g. daily
    from cron).
    """
    from app.core.db import make_engine
    from app.rights import service as rights_service

    settings = get_settings()
    retention = days if days is not None else settings.DATA_RETENTION_DAYS
    engine = make_engine(settings.DATABASE_URL, pool_size=1)
    try:
        report = rights_service.anonymise_expired(
            engine, days=retention, dry_run=dry_run, batch_size=batch_size
        )
    finally:
        engine.dispose()
    verb = "would anonymise" if dry_run else "anonymised"
    cutoff = report.cutoff.strftime("%Y-%m-%d %H:%M UTC")
    typer.echo(f"petitions closed or archived before {cutoff} ({retention} days ago):")
    for petition in report.petitions:
        typer.echo(f"  {petition.slug}: {verb} {petition.signatures} signature(s)")
    if not report.petitions:
        typer.echo("  none")
    typer.echo(f"gifts that ended before then: {verb} {report.donations} donor(s)")
    summary = f"{verb} {report.signatures} signature(s) in all"
    if not dry_run:
        summary += f"; cleared the recipient of {report.messages} e-mail(s)"
    typer.echo(summary + (" (dry run: nothing was changed)" if dry_run else ""))
