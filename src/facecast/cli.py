"""The `facecast` command: a thin shell over the pipeline and the service."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from facecast.errors import FacecastError

DEMO_TEXT = (
    "Hallo! Ich bin Grace Hopper. Dieses Video wurde aus einem einzigen Foto gemacht, "
    "ganz ohne Grafikkarte."
)
F = TypeVar("F", bound=Callable[..., Any])


def _demo_photo() -> Path:
    """The Grace Hopper portrait that ships inside matplotlib's wheel."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@contextmanager
def _plain_errors() -> Iterator[None]:
    """Bad input ends the command with one plain line and exit status 2, never a traceback."""
    try:
        yield
    except FacecastError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except (OSError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _render_options(func: F) -> F:
    decorators = [
        click.option(
            "-o",
            "--output",
            type=click.Path(dir_okay=False, path_type=Path),
            default=Path("out.mp4"),
            show_default=True,
            help="Where the MP4 goes.",
        ),
        click.option("--fps", type=click.IntRange(1, 60), default=25, show_default=True),
        click.option(
            "--size",
            type=click.IntRange(128, 2048),
            default=512,
            show_default=True,
            help="Output edge in pixels (square crop on the face).",
        ),
        click.option(
            "--full-frame", is_flag=True, help="Keep the whole photo, longer side = size."
        ),
        click.option(
            "--lang", default="de", show_default=True, help="Speech language (text input)."
        ),
        click.option("--voice", default=None, help="Voice variant of the speech backend."),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Same inputs and seed give the same video.",
        ),
        click.option(
            "--stream",
            "stream",
            type=click.File("wb", lazy=False),
            default=None,
            help="Also write MPEG-TS here while rendering ('-': stdout, e.g. | ffplay -).",
        ),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


def _options(opts: dict[str, Any]) -> Any:
    from facecast.options import RenderOptions

    return RenderOptions(
        fps=opts["fps"],
        size=opts["size"] - opts["size"] % 2,
        full_frame=opts["full_frame"],
        lang=opts["lang"],
        voice=opts["voice"],
        seed=opts["seed"],
    )


@contextmanager
def _progress_bar() -> Iterator[Callable[[str, float], None]]:
    """The render progress bar on stderr: a callable taking (stage, fraction)."""
    from tqdm import tqdm

    # disable=None: a bar on a terminal, nothing when stderr is a pipe or a file.
    with tqdm(
        disable=None,
        total=100,
        unit="%",
        desc="starting",
        leave=False,
        file=sys.stderr,
        bar_format="{desc:<8} {bar} {n:.0f}%",
    ) as bar:

        def progress(stage: str, fraction: float) -> None:
            bar.set_description_str(stage)
            bar.n = round(fraction * 100)
            bar.refresh()

        yield progress


def _run_remote(
    server: str,
    api_key: str | None,
    image: Path,
    output: Path,
    text: str | None,
    audio: Path | None,
    **opts: Any,
) -> None:
    """Render through a facecast service: submit, follow with the progress bar, download."""
    import time

    from facecast.client import FacecastAPIError, FacecastClient

    if opts.get("stream") is not None:
        raise FacecastError("--stream writes a local render; leave it out with --server.")
    options = _options(opts)
    started = time.perf_counter()
    try:
        with FacecastClient(server, api_key) as client, _progress_bar() as progress:
            if text is not None:
                job = client.submit_text(image, text, options)
            else:
                assert audio is not None
                job = client.submit_audio(image, audio, options)
            job = client.wait(job.job_id, lambda view: progress(view.stage, view.progress / 100))
            if job.status != "done":
                error = job.error or FacecastAPIError(job.status, f"The job was {job.status}.")
                raise FacecastError(f"{error.message} ({error.code})")
            client.download(job.job_id, output)
    except FacecastAPIError as exc:
        raise FacecastError(f"{exc.message} ({exc.code})") from None
    click.echo(
        f"wrote {output} (job {job.job_id} on {server}) in {time.perf_counter() - started:.1f} s"
    )


def _run_render(
    image: Path, output: Path, text: str | None, audio: Path | None, **opts: Any
) -> None:
    from facecast.pipeline import render_talking_head
    from facecast.video import mpegts_target

    stream = opts.pop("stream", None)
    if stream is not None and stream.isatty():
        raise FacecastError("--stream writes video: pipe it to a player, e.g. | ffplay -")
    streams = [mpegts_target(stream)] if stream is not None else []

    options = _options(opts)
    with _progress_bar() as progress:
        result = render_talking_head(
            image,
            output,
            text=text,
            audio=audio,
            options=options,
            progress=progress,
            streams=streams,
        )
    speed = result.duration / max(result.elapsed, 1e-9)
    click.echo(
        f"wrote {result.video} ({result.duration:.1f} s, {result.frames} frames) "
        f"in {result.elapsed:.1f} s ({speed:.1f}x real time)",
        err=stream is not None and getattr(stream, "name", None) == "<stdout>",
    )


@click.group()
@click.version_option(package_name="facecast")
def main() -> None:
    """facecast: one portrait photo plus text or speech -> a lip-synced talking-head MP4."""


@main.command()
@click.option(
    "--image",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Portrait photo (JPEG, PNG, WebP).",
)
@click.option("--text", default=None, help="Text to speak.")
@click.option(
    "--audio",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Recording to lip-sync to (WAV, MP3, OGG/Opus, FLAC, M4A).",
)
@_render_options
@click.option(
    "--server",
    default=None,
    metavar="URL",
    help="Render on this facecast service instead of here (same options, same progress bar).",
)
@click.option("--api-key", default=None, help="API key for --server.")
def render(
    image: Path,
    text: str | None,
    audio: Path | None,
    output: Path,
    server: str | None,
    api_key: str | None,
    **opts: Any,
) -> None:
    """Animate IMAGE speaking TEXT or AUDIO."""
    with _plain_errors():
        if (text is None) == (audio is None):
            raise FacecastError("Give exactly one of --text or --audio.")
        if server is not None:
            _run_remote(server, api_key, image, output, text, audio, **opts)
        else:
            _run_render(image, output, text, audio, **opts)


@main.command()
@_render_options
def demo(output: Path, **opts: Any) -> None:
    """Animate the Grace Hopper portrait from matplotlib saying a short German sentence."""
    with _plain_errors():
        _run_render(_demo_photo(), output, DEMO_TEXT, None, **opts)


@main.command()
@click.option("--text", required=True, help="Text to speak.")
@click.option("--lang", default="de", show_default=True)
@click.option("--voice", default=None)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("speech.wav"),
    show_default=True,
)
def tts(text: str, lang: str, voice: str | None, output: Path) -> None:
    """Speak TEXT into a WAV file."""
    from facecast.audio import save_wav
    from facecast.pipeline import synthesize

    with _plain_errors():
        speech = synthesize(text, lang, voice)
        save_wav(speech.audio, output)
        click.echo(
            f"wrote {output} ({speech.audio.duration:.1f} s, {len(speech.phonemes)} phonemes)"
        )


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

    with _plain_errors():
        run_server(host, port, workers)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the app listens on.")
@click.option("--port", type=int, default=8550, show_default=True)
@click.option("--server", default=None, help="facecast API URL (default http://127.0.0.1:8000).")
@click.option("--desktop", is_flag=True, help="Open a desktop window instead of a web page.")
def app(host: str, port: int, server: str | None, desktop: bool) -> None:
    """Start the client app (Flet), talking to a facecast API."""
    with _plain_errors():
        try:
            from clients.app import facecast_app_main
        except ImportError as exc:
            raise FacecastError(
                f"The app needs its extras: pip install -e '.[app]' ({exc.name} is missing)."
            ) from None
        facecast_app_main(host, port, server, web=not desktop)


@main.command()
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--queues", default="default", show_default=True, help="Comma-separated queues.")
@click.option("--loglevel", default="info", show_default=True)
def worker(concurrency: int, queues: str, loglevel: str) -> None:
    """Start a render worker alone (scale out with several)."""
    from facecast.worker import run_worker

    with _plain_errors():
        run_worker(concurrency, [q.strip() for q in queues.split(",") if q.strip()], loglevel)


if __name__ == "__main__":
    main()
