"""`chorus export`: a petition's signatures to a file, with a progress bar."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from app.core.config import get_settings
from app.exports.service import ExportFormat
from app.signatures.models import SignatureStatus


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the password database
        return "unknown"


def export_command(
    slug: Annotated[str, typer.Argument(help="The petition's slug, e.g. no-forced-return.")],
    export_format: Annotated[
        ExportFormat, typer.Option("--format", help="csv, ndjson or json (a JSON array).")
    ] = ExportFormat.csv,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            dir_okay=False,
            help="File to write; default ./<slug>-signatures-<date>.<format>.",
        ),
    ] = None,
    status: Annotated[
        SignatureStatus | None, typer.Option(help="Only signatures in this state.")
    ] = None,
    country: Annotated[
        list[str] | None,
        typer.Option(
            metavar="CODE", help="ISO 3166-1 alpha-2 code; repeat it or give a comma list."
        ),
    ] = None,
    consent_updates: Annotated[
        bool | None,
        typer.Option(
            "--consent-updates/--no-consent-updates",
            help="Only signers who did (or did not) opt in to updates.",
        ),
    ] = None,
    created_from: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN", help="Signed at or after this ISO 8601 date or time (UTC by default)."
        ),
    ] = None,
    created_to: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN", help="Signed before this ISO 8601 date or time (UTC by default)."
        ),
    ] = None,
    bom: Annotated[bool, typer.Option(help="CSV: start with a UTF-8 BOM, for Excel.")] = False,
) -> None:
    """Export a petition's signatures (the same export as the admin API), with an audit entry."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from app.core.db import make_engine, session_scope
    from app.core.errors import ProblemError
    from app.exports import service as export_service

    try:
        filters = export_service.make_filters(
            status=status,
            created_from=created_from,
            created_to=created_to,
            countries=country or (),
            consent_updates=consent_updates,
        )
    except ProblemError as exc:
        for error in exc.errors or []:
            typer.echo(f"--{error.field.replace('_', '-')}: {error.message}", err=True)
        raise typer.Exit(2) from None
    bom = bom and export_format is ExportFormat.csv
    path = output or Path(export_service.filename(slug=slug, export_format=export_format))
    if not path.parent.is_dir():
        typer.echo(f"--output: there is no directory {str(path.parent)!r}.", err=True)
        raise typer.Exit(2)

    engine = make_engine(get_settings().DATABASE_URL, pool_size=1)
    try:
        with session_scope(engine) as session:
            petition = export_service.find_petition(session, slug=slug)
            if petition is None:
                typer.echo(f"No petition called {slug!r}.", err=True)
                raise typer.Exit(1)
            entry = export_service.start_export(
                session,
                petition=petition,
                actor=None,
                actor_email=f"cli:{_os_user()}",
                export_format=export_format,
                filters=filters,
                bom=bom,
            )
        assert petition.id is not None and entry.id is not None
        total = export_service.count_rows(engine, petition_id=petition.id, filters=filters)
        # Written next to the target and renamed at the end: no half-written export under the
        # final name.
        partial = path.with_name(path.name + ".part")
        written = 0
        progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        try:
            with progress, partial.open("wb") as out:
                task = progress.add_task(f"Exporting {petition.slug}", total=total)

                def advance(rows: int) -> None:
                    nonlocal written
                    written += rows
                    progress.update(task, completed=written)

                for chunk in export_service.stream_export(
                    engine,
                    petition_id=petition.id,
                    entry_id=entry.id,
                    export_format=export_format,
                    filters=filters,
                    bom=bom,
                    on_rows=advance,
                ):
                    out.write(chunk)
            partial.replace(path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    finally:
        engine.dispose()
    typer.echo(f"{written} signature(s) written to {path}")
