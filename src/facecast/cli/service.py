"""`facecast serve`, `facecast worker`, `facecast app` and `facecast live`: the service and
its clients."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from facecast.cli.base import main, plain_errors, require_consent
from facecast.errors import FacecastError


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=1,
    show_default=True,
    help="Render worker processes started beside the API.",
)
def serve(host: str, port: int, workers: int) -> None:
    """Start the HTTP API and render workers on this machine."""
    from facecast.service.runner import serve as run_server

    with plain_errors():
        run_server(host, port, workers)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the app listens on.")
@click.option("--port", type=int, default=8550, show_default=True)
@click.option("--server", default=None, help="facecast API URL (default http://127.0.0.1:8000).")
@click.option("--desktop", is_flag=True, help="Open a desktop window instead of a web page.")
def app(host: str, port: int, server: str | None, desktop: bool) -> None:
    """Start the client app (Flet), talking to a facecast API."""
    with plain_errors():
        try:
            from clients.app import facecast_app_main
        except ImportError as exc:
            raise FacecastError(
                f"The app needs its extras: pip install -e '.[app]' ({exc.name} is missing)."
            ) from None
        facecast_app_main(host, port, server, web=not desktop)


@main.command()
@click.option(
    "--image", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option("--server", default="http://127.0.0.1:8000", show_default=True, metavar="URL")
@click.option("--api-key", envvar="FACECAST_API_KEY", default=None, help="API key for --server.")
@click.option("--consent", is_flag=True, help="You confirm the person agreed (required).")
@click.option("--lang", default=None, help="Language of what is said (default: the server's).")
@click.option("--voice", default=None, help="A voice from `facecast voices`.")
@click.option("--say", "says", multiple=True, help="Say this (repeatable); default: read lines.")
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write what the session showed and said to this MP4.",
)
@click.option("--page", is_flag=True, help="Open the server's live page in a browser instead.")
def live(
    image: Path,
    server: str,
    api_key: str | None,
    consent: bool,
    lang: str | None,
    voice: str | None,
    says: tuple[str, ...],
    record: Path | None,
    page: bool,
) -> None:
    """Talk through a photo live (WebRTC): each line typed is spoken, `/clear` interrupts."""
    with plain_errors():
        if page:
            from facecast.live.console import open_page

            click.echo(f"Opened {open_page(server)}; pick {image} there.")
            return
        require_consent(consent)
        try:
            from facecast.live import console
        except ImportError as exc:
            raise FacecastError(
                f"Live sessions need their extra: pip install 'facecast[live]' ({exc.name} "
                "is missing)."
            ) from None
        from facecast.client import FacecastAPIError

        try:
            asyncio.run(
                console.run(
                    server,
                    api_key,
                    image,
                    list(says),
                    consent=consent,
                    lang=lang,
                    voice=voice,
                    record=record,
                )
            )
        except FacecastAPIError as exc:
            raise FacecastError(exc.message) from None


@main.command()
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--queues", default="default", show_default=True, help="Comma-separated queues.")
@click.option("--loglevel", default="info", show_default=True)
def worker(concurrency: int, queues: str, loglevel: str) -> None:
    """Start a render worker alone (scale out with several)."""
    from facecast.worker import run_worker

    with plain_errors():
        run_worker(concurrency, [q.strip() for q in queues.split(",") if q.strip()], loglevel)
