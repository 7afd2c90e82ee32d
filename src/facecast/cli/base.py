"""The `facecast` command group and what its commands share: plain one-line errors, text and
output checks, the render and server option groups, progress and the summary line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from facecast.cli_options import chosen, option_flags
from facecast.errors import BackendUnavailableError, FacecastError
from facecast.options import VIDEO_FORMATS, options_error

VOICE_HELP = (
    "Voice: backend:voice (e.g. pico:de-DE, pico:de-DE-male, espeak:f3), a backend, a plain "
    "voice name, or male / female (the best installed voice of that kind in --lang); "
    "`facecast voices` lists them. Default: the language's most natural installed voice - "
    "on a fresh install SVOX Pico for German (pico:de-DE) and English (pico:en-US), "
    "espeak-ng for languages Pico lacks."
)


DEMO_TEXT = (
    "Hallo! Ich bin Grace Hopper. Dieses Video wurde aus einem einzigen Foto gemacht, "
    "ganz ohne Grafikkarte."
)


F = TypeVar("F", bound=Callable[..., Any])


NEUTRAL_PROSODY = (1.0, 0.0, 0.0)
"""--rate, --pitch, --volume that change nothing (facecast.options' defaults)."""


@contextmanager
def plain_errors() -> Iterator[None]:
    """Bad input ends the command with one plain line and exit status 2, never a traceback."""
    try:
        yield
    except FacecastError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except ValidationError as exc:  # RenderOptions says which option, in one sentence
        click.echo(f"error: {options_error(exc)}", err=True)
        sys.exit(2)
    except (OSError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


TEXT_FILE_MAX_BYTES = 1 << 20
"""A --text-file larger than this is not a text to speak (the service's cap is far lower)."""


TEXT_FILE_OPTION = click.option(
    "--text-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read the text to speak from this UTF-8 file (`--text -` reads standard input).",
)


def text_input(text: str | None, text_file: Path | None) -> str | None:
    """The text to speak from --text (`-`: standard input) or --text-file; None for neither."""
    if text is not None and text_file is not None:
        raise FacecastError("Give --text or --text-file, not both.")
    try:
        if text_file is not None:
            if text_file.stat().st_size > TEXT_FILE_MAX_BYTES:
                raise FacecastError(f"{text_file} is over {TEXT_FILE_MAX_BYTES >> 20} MiB.")
            return text_file.read_text(encoding="utf-8")
        if text == "-":
            return sys.stdin.read()
    except UnicodeDecodeError:
        raise FacecastError(f"{text_file or 'standard input'} is not UTF-8 text.") from None
    return text


def check_output(path: Path) -> None:
    """Refuse an output the command could not write, before any work, naming the path."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FacecastError(f"cannot write {path}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise FacecastError(f"cannot write {path}: the folder {folder} is not writable.")
    if path.is_dir():
        raise FacecastError(f"cannot write {path}: it is a folder.")


def render_options(func: F) -> F:
    """The options of one render: where it goes, a live stream, and every job option."""
    decorators = [
        click.option(
            "-o",
            "--output",
            type=click.Path(dir_okay=False, path_type=Path),
            default=Path("out.mp4"),
            show_default=True,
            help="Where the MP4 goes.",
        ),
        job_options,
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


def server_options(func: F) -> F:
    """Rendering on a facecast service instead of here."""
    decorators = [
        click.option(
            "--server",
            default=None,
            metavar="URL",
            help="Render on this facecast service instead of here (same options).",
        ),
        click.option(
            "--api-key",
            envvar="FACECAST_API_KEY",
            default=None,
            help="API key for --server (or FACECAST_API_KEY, which keeps it out of shell history).",
        ),
        click.option(
            "--consent",
            is_flag=True,
            help="With --server: you confirm the people in the photos agreed to be animated "
            "(required).",
        ),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


def require_consent(consent: bool) -> None:
    if not consent:
        raise FacecastError(
            "add --consent to confirm the person in the photo agreed to be animated "
            "(the service requires it)."
        )


job_options = option_flags()
"""Every render option's flag (facecast.options declares them; shared by render, demo, batch)."""


def _format_for(output: Path | None, asked: str | None) -> str:
    """The video format: --format, else the output's suffix (.webm), else MP4."""
    named = output.suffix.lower().lstrip(".") if output is not None else ""
    if asked is None:
        return "webm" if named == "webm" else "mp4"
    if named in VIDEO_FORMATS and named != asked:
        raise FacecastError(
            f"{output} is not a .{asked} file: name it .{asked} or leave --format out."
        )
    return asked


def options_from(opts: dict[str, Any], output: Path | None = None) -> Any:
    """The command's RenderOptions; the format from the output's name unless --format says."""
    from facecast.options import RenderOptions
    from facecast.speech.script import parse_lexicon

    source = click.get_current_context().get_parameter_source("format")
    asked = None if source in (None, click.core.ParameterSource.DEFAULT) else opts.get("format")
    options = RenderOptions(**{**chosen(opts), "format": _format_for(output, asked)})
    if options.lexicon:
        parse_lexicon(options.lexicon)  # a broken lexicon: one plain line, before any work
    return options


def cloning(options: Any) -> Any:
    """`options` speaking with this installation's cloning backend; one clear error without."""
    import dataclasses

    from facecast.speech.registry import cloning_backend

    backend = cloning_backend()
    if backend is None:
        raise BackendUnavailableError(
            "Voice cloning needs XTTS: pip install 'facecast[xtts]' and set "
            "FACECAST_XTTS_MODEL_DIR to its weights."
        )
    return dataclasses.replace(options, speech_backend=backend, voice=None)


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


def write_preview(
    image: Path, output: Path, server: str | None, api_key: str | None, opts: dict[str, Any]
) -> None:
    """The video's first frame as a PNG, made here or by the service (POST /preview)."""
    import io

    from PIL import Image

    if output.suffix.lower() != ".png":
        raise FacecastError("--preview writes a PNG: name it with -o NAME.png.")
    check_output(output)
    if opts.get("stream") is not None:
        raise FacecastError("--preview writes one picture; leave --stream out.")
    if server is not None:
        from facecast.client import FacecastAPIError, FacecastClient

        try:
            with FacecastClient(server, api_key) as client:
                data = client.preview(image, options_from(opts))
        except FacecastAPIError as exc:
            raise FacecastError(_remote_message(exc, server)) from None
    else:
        from facecast.pipeline import preview_frame

        buffer = io.BytesIO()
        Image.fromarray(preview_frame(image, options_from(opts))).save(buffer, format="PNG")
        data = buffer.getvalue()
    output.write_bytes(data)
    click.echo(f"wrote {output}")


def run_remote(
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

    from facecast.client import FacecastClient

    if opts.get("stream") is not None:
        raise FacecastError("--stream writes a local render; leave it out with --server.")
    transcript = opts.pop("transcript", None)
    options = options_from(opts, output)
    started = time.perf_counter()
    with FacecastClient(server, api_key) as client, _progress_bar() as progress:
        job_id = remote_render(
            client,
            image,
            output,
            text,
            audio,
            options,
            lambda view: progress(view.stage, view.progress / 100),
            transcript,
        )
    click.echo(
        f"wrote {output} (job {job_id} on {server}) in {time.perf_counter() - started:.1f} s"
    )


def remote_render(
    client: Any,
    image: Path,
    output: Path,
    text: str | None,
    audio: Path | None,
    options: Any,
    progress: Callable[[Any], None] | None = None,
    transcript: str | None = None,
) -> str:
    """One video made on the service `client` talks to (and its captions beside it, when
    asked for); its job id. Every failure is a FacecastError (one plain line): the service's
    own words, or what to do about the key."""
    from facecast.client import FacecastAPIError

    try:
        if text is not None:
            job = client.submit_text(image, text, options, consent=True)
        else:
            job = client.submit_audio(image, audio, options, consent=True, transcript=transcript)
        job = client.wait(job.job_id, progress)
        if job.status != "done":
            error = job.error or FacecastAPIError(job.status, f"The job was {job.status}.")
            raise FacecastError(f"{error.message} ({error.code})")
        client.download(job.job_id, output, job.video_name)
        if job.captions_name:
            captions = output.with_suffix(Path(job.captions_name).suffix)
            client.download(job.job_id, captions, job.captions_name)
            click.echo(f"wrote {captions}", err=True)
    except FacecastAPIError as exc:
        raise FacecastError(_remote_message(exc, client.base_url)) from None
    return str(job.job_id)


def _remote_message(exc: Any, server: str) -> str:
    """One plain line for an error the service answered: its own words, or what to do about
    the key."""
    if exc.code == "unauthorized":
        return f"{server} refused the API key: pass --api-key KEY or set FACECAST_API_KEY."
    return f"{exc.message} ({exc.code})"


def transcript_input(
    transcript: str | None, transcript_file: Path | None, audio: Path | None, opts: dict[str, Any]
) -> str | None:
    """The recording's transcript from --transcript or --transcript-file, checked against the
    other options: it belongs to --audio, and captions of a recording need it."""
    if transcript is not None and transcript_file is not None:
        raise FacecastError("Give --transcript or --transcript-file, not both.")
    words = text_input(transcript, transcript_file)
    if words is not None and audio is None:
        raise FacecastError("--transcript belongs to --audio (a text is its own transcript).")
    if audio is not None and opts.get("captions") and not (words and words.strip()):
        raise FacecastError("--captions for a recording need --transcript (the words it says).")
    return words


def run_render(
    image: Path, output: Path, text: str | None, audio: Path | None, **opts: Any
) -> None:
    from facecast.backends import check_options
    from facecast.pipeline import choose_voice, render_talking_head
    from facecast.video import mpegts_target

    stream = opts.pop("stream", None)
    transcript = opts.pop("transcript", None)
    if stream is not None and stream.isatty():
        raise FacecastError("--stream writes video: pipe it to a player, e.g. | ffplay -")
    streams = [mpegts_target(stream)] if stream is not None else []

    options = options_from(opts, output)
    if streams and options.format != "mp4":
        raise FacecastError("--stream sends H.264: it needs the MP4 format.")
    if options.voice_sample is not None:
        if text is None:
            raise FacecastError("--clone-voice speaks --text in the sample's voice: give --text.")
        options = cloning(options)
    elif text is not None:  # the voice is refused here, before the photo is even read
        options = choose_voice(options)
    check_options(options)
    _say_cpu_cost(options)
    with _progress_bar() as progress:
        result = render_talking_head(
            image,
            output,
            text=text,
            audio=audio,
            options=options,
            progress=progress,
            streams=streams,
            transcript=transcript,
        )
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.captions is not None:
        click.echo(f"wrote {result.captions}", err=stream is not None)
    click.echo(
        f"wrote {result.video} ({result.duration:.1f} s, {result.frames} frames) "
        f"in {result.elapsed:.1f} s ({_speed(result.duration, result.elapsed)})",
        err=stream is not None and getattr(stream, "name", None) == "<stdout>",
    )


def _speed(video_seconds: float, elapsed: float) -> str:
    """ "12.3x real time", or "4 s per second of video" when slower than real time."""
    if elapsed <= video_seconds:
        return f"{video_seconds / max(elapsed, 1e-9):.1f}x real time"
    per_second = elapsed / max(video_seconds, 1e-9)
    return f"{per_second:.{0 if per_second >= 10 else 1}f} s per second of video"


def _say_cpu_cost(options: Any) -> None:
    """A render slower than real time: say what to expect before starting (from the rate
    measured on this host, see facecast.rates)."""
    from facecast.backends import job_estimate

    cost = job_estimate(options, None)
    if cost is None or cost.wall_per_video_second <= 1.0:
        return
    how = "measured on this host" if cost.measured else "not measured on this host yet"
    click.echo(
        f"note: this takes about {cost.wall_per_video_second:.0f} s per second of video ({how})",
        err=True,
    )


@click.group()
@click.version_option(package_name="facecast")
def main() -> None:
    """facecast: one portrait photo plus text or speech -> a lip-synced talking-head MP4.

    \b
    Captions:  render ... --captions vtt|srt|burn  (out.vtt / out.srt, or drawn in)
    Framings:  render ... --framing square|portrait|landscape|full
    Preview:   render ... --preview -o first.png   (the first frame, at once)
    Batch:     batch videos.csv                    (columns image, text|audio, voice, output)
    Text:      tts --show-text --text "..." --lang de  (what will be spoken)
    """
