"""`facecast batch`: many videos from a manifest, locally or through a server."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from facecast.cli.base import (
    cloning,
    job_options,
    main,
    options_from,
    plain_errors,
    remote_render,
    require_consent,
    server_options,
)


@main.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@job_options
@server_options
@click.option(
    "--concurrency",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="With --server: videos rendering at once.",
)
def batch(
    manifest: Path,
    server: str | None,
    api_key: str | None,
    consent: bool,
    concurrency: int,
    **opts: Any,
) -> None:
    """Render every row of MANIFEST, a CSV file with the columns image, text or audio, voice,
    lang and output (paths relative to its folder). Existing outputs are skipped; a failed row
    is reported and the rest go on (exit status 1 when any failed)."""
    from facecast import batch as batches

    with plain_errors():
        rows = batches.read_manifest(manifest)
        base = options_from(opts)
        if server is None:
            report = _batch_bar(rows, lambda bar: batches.run(rows, _local_row(base), 1, bar))
        else:
            from facecast.client import FacecastClient

            require_consent(consent)
            with FacecastClient(server, api_key) as client:

                def remote(row: Any) -> None:
                    options = row.options(base)
                    remote_render(client, row.image, row.output, row.text, row.audio, options)

                report = _batch_bar(rows, lambda bar: batches.run(rows, remote, concurrency, bar))
    for failed in report.failures:
        click.echo(
            f"failed: line {failed.row.line} ({failed.row.output}): {failed.message}", err=True
        )
    click.echo(report.summary())
    if report.failures:
        sys.exit(1)


def _local_row(base: Any) -> Callable[[Any], None]:
    """Renders one manifest row in this process (photos and voices stay warm between rows);
    an output named .webm is a WebM."""
    import dataclasses

    from facecast.backends import check_options
    from facecast.pipeline import choose_voice, render_talking_head

    def render(row: Any) -> None:
        options = row.options(base)
        if row.output.suffix.lower() == ".webm":
            options = dataclasses.replace(options, format="webm")
        if options.voice_sample is not None and row.text is not None:
            options = cloning(options)
        elif row.text is not None:
            options = choose_voice(options)
        check_options(options)
        render_talking_head(row.image, row.output, text=row.text, audio=row.audio, options=options)

    return render


def _batch_bar(rows: Any, work: Callable[[Callable[[Any], None]], Any]) -> Any:
    """Runs `work` with a callback that moves one progress bar over all rows."""
    import threading

    from tqdm import tqdm

    lock = threading.Lock()
    with tqdm(total=len(rows), unit="video", file=sys.stderr, leave=False) as bar:

        def advance(outcome: Any) -> None:
            with lock:
                bar.set_postfix_str(f"{outcome.status}: {outcome.row.output.name}")
                bar.update(1)

        return work(advance)
