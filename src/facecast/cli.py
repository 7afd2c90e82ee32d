"""The `facecast` command: a thin shell over the pipeline and the service."""

from __future__ import annotations

import asyncio
import json
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


def _text_input(text: str | None, text_file: Path | None) -> str | None:
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


def _check_output(path: Path) -> None:
    """Refuse an output the command could not write, before any work, naming the path."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FacecastError(f"cannot write {path}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise FacecastError(f"cannot write {path}: the folder {folder} is not writable.")
    if path.is_dir():
        raise FacecastError(f"cannot write {path}: it is a folder.")


def _render_options(func: F) -> F:
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
        _job_options,
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


def _server_options(func: F) -> F:
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


def _require_consent(consent: bool) -> None:
    if not consent:
        raise FacecastError(
            "add --consent to confirm the person in the photo agreed to be animated "
            "(the service requires it)."
        )


_job_options = option_flags()
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


def _options(opts: dict[str, Any], output: Path | None = None) -> Any:
    """The command's RenderOptions; the format from the output's name unless --format says."""
    from facecast.options import RenderOptions
    from facecast.speech.script import parse_lexicon

    source = click.get_current_context().get_parameter_source("format")
    asked = None if source in (None, click.core.ParameterSource.DEFAULT) else opts.get("format")
    options = RenderOptions(**{**chosen(opts), "format": _format_for(output, asked)})
    if options.lexicon:
        parse_lexicon(options.lexicon)  # a broken lexicon: one plain line, before any work
    return options


def _cloning(options: Any) -> Any:
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


def _write_preview(
    image: Path, output: Path, server: str | None, api_key: str | None, opts: dict[str, Any]
) -> None:
    """The video's first frame as a PNG, made here or by the service (POST /preview)."""
    import io

    from PIL import Image

    if output.suffix.lower() != ".png":
        raise FacecastError("--preview writes a PNG: name it with -o NAME.png.")
    _check_output(output)
    if opts.get("stream") is not None:
        raise FacecastError("--preview writes one picture; leave --stream out.")
    if server is not None:
        from facecast.client import FacecastAPIError, FacecastClient

        try:
            with FacecastClient(server, api_key) as client:
                data = client.preview(image, _options(opts))
        except FacecastAPIError as exc:
            raise FacecastError(_remote_message(exc, server)) from None
    else:
        from facecast.pipeline import preview_frame

        buffer = io.BytesIO()
        Image.fromarray(preview_frame(image, _options(opts))).save(buffer, format="PNG")
        data = buffer.getvalue()
    output.write_bytes(data)
    click.echo(f"wrote {output}")


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

    from facecast.client import FacecastClient

    if opts.get("stream") is not None:
        raise FacecastError("--stream writes a local render; leave it out with --server.")
    transcript = opts.pop("transcript", None)
    options = _options(opts, output)
    started = time.perf_counter()
    with FacecastClient(server, api_key) as client, _progress_bar() as progress:
        job_id = _remote_render(
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


def _remote_render(
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


def _transcript_input(
    transcript: str | None, transcript_file: Path | None, audio: Path | None, opts: dict[str, Any]
) -> str | None:
    """The recording's transcript from --transcript or --transcript-file, checked against the
    other options: it belongs to --audio, and captions of a recording need it."""
    if transcript is not None and transcript_file is not None:
        raise FacecastError("Give --transcript or --transcript-file, not both.")
    words = _text_input(transcript, transcript_file)
    if words is not None and audio is None:
        raise FacecastError("--transcript belongs to --audio (a text is its own transcript).")
    if audio is not None and opts.get("captions") and not (words and words.strip()):
        raise FacecastError("--captions for a recording need --transcript (the words it says).")
    return words


def _run_render(
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

    options = _options(opts, output)
    if streams and options.format != "mp4":
        raise FacecastError("--stream sends H.264: it needs the MP4 format.")
    if options.voice_sample is not None:
        if text is None:
            raise FacecastError("--clone-voice speaks --text in the sample's voice: give --text.")
        options = _cloning(options)
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


@main.command()
@click.option(
    "--image",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Portrait photo (JPEG, PNG, WebP, HEIC).",
)
@click.option("--text", default=None, help="Text to speak (`-`: read standard input).")
@TEXT_FILE_OPTION
@click.option(
    "--audio",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Recording to lip-sync to (WAV, MP3, OGG/Opus, FLAC, M4A).",
)
@click.option(
    "--transcript",
    default=None,
    help="With --audio and --captions: the words the recording says (`-`: standard input).",
)
@click.option(
    "--transcript-file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The same, read from a UTF-8 file.",
)
@_render_options
@_server_options
@click.option(
    "--preview",
    is_flag=True,
    help="Write only the first frame as PNG (-o NAME.png), in well under a second.",
)
def render(
    image: Path,
    text: str | None,
    text_file: Path | None,
    audio: Path | None,
    transcript: str | None,
    transcript_file: Path | None,
    output: Path,
    server: str | None,
    api_key: str | None,
    consent: bool,
    preview: bool,
    **opts: Any,
) -> None:
    """Animate IMAGE speaking TEXT or AUDIO, optionally with captions."""
    with _plain_errors():
        if preview:
            _write_preview(image, output, server, api_key, opts)
            return
        text = _text_input(text, text_file)
        if (text is None) == (audio is None):
            raise FacecastError("Give exactly one of --text, --text-file or --audio.")
        opts["transcript"] = _transcript_input(transcript, transcript_file, audio, opts)
        if audio is not None and (opts["rate"], opts["pitch"], opts["volume"]) != (1.0, 0.0, 0.0):
            raise FacecastError(
                "--rate, --pitch and --volume change synthesised speech: give --text."
            )
        source = click.get_current_context().get_parameter_source("output")
        if opts.get("format") == "webm" and source is click.core.ParameterSource.DEFAULT:
            output = output.with_suffix(".webm")
        _check_output(output)
        if server is not None:
            _require_consent(consent)
            _run_remote(server, api_key, image, output, text, audio, **opts)
        else:
            _run_render(image, output, text, audio, **opts)


@main.command()
@click.option(
    "--image",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Photo (JPEG, PNG, WebP, HEIC).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, as POST /faces answers.")
def faces(image: Path, as_json: bool) -> None:
    """List the faces in IMAGE, largest first, with their boxes (for --face / --face-at)."""
    from facecast.pipeline import find_photo_faces

    with _plain_errors():
        found = find_photo_faces(image)
        if as_json:
            click.echo(json.dumps(found.as_json()))
            return
        turned = f", turned {found.rotation} degrees clockwise" if found.rotation else ""
        click.echo(f"photo {found.width} x {found.height}{turned}: {len(found.boxes)} face(s)")
        for index, box in enumerate(found.boxes):
            click.echo(
                f"  --face {index}: x {box.x0}-{box.x1}, y {box.y0}-{box.y1} "
                f"({box.x1 - box.x0} x {box.y1 - box.y0} px)"
            )


@main.command()
@_render_options
def demo(output: Path, **opts: Any) -> None:
    """Animate the Grace Hopper portrait from matplotlib saying a short German sentence."""
    with _plain_errors():
        _check_output(output)
        _run_render(_demo_photo(), output, DEMO_TEXT, None, **opts)


@main.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_job_options
@_server_options
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

    with _plain_errors():
        rows = batches.read_manifest(manifest)
        base = _options(opts)
        if server is None:
            report = _batch_bar(rows, lambda bar: batches.run(rows, _local_row(base), 1, bar))
        else:
            from facecast.client import FacecastClient

            _require_consent(consent)
            with FacecastClient(server, api_key) as client:

                def remote(row: Any) -> None:
                    options = row.options(base)
                    _remote_render(client, row.image, row.output, row.text, row.audio, options)

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
            options = _cloning(options)
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


@main.command(help=f"Speak TEXT into a WAV file.\n\n{VOICE_HELP}")
@click.option("--text", default=None, help="Text to speak (`-`: read standard input).")
@TEXT_FILE_OPTION
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("speech.wav"),
    show_default=True,
)
@click.option(
    "--show-text",
    is_flag=True,
    help="Print what will be spoken (numbers, dates, your lexicon, pauses) and stop.",
)
@option_flags(speech_only=True)
def tts(
    text: str | None, text_file: Path | None, output: Path, show_text: bool, **opts: Any
) -> None:
    """Speak TEXT into a WAV file.

    Pauses: `[pause 500ms]` or SSML `<break time="500ms"/>` anywhere in TEXT.
    """
    from facecast.audio import save_wav
    from facecast.options import RenderOptions
    from facecast.pipeline import speak
    from facecast.speech import script
    from facecast.speech.registry import choose_voice

    with _plain_errors():
        text = _text_input(text, text_file)
        if text is None:
            raise FacecastError("Give --text (`-` reads standard input) or --text-file.")
        options = RenderOptions(**chosen(opts, speech_only=True))
        if options.lexicon:
            script.parse_lexicon(options.lexicon)
        if show_text:
            click.echo(script.spoken_text(script.prepare(text, options.lang, options.lexicon)))
            return
        _check_output(output)
        if options.voice_sample is not None:
            options = _cloning(options)
            label = f"{options.speech_backend} (cloned from {options.voice_sample.name})"
        else:
            options = choose_voice(options)
            label = f"{options.speech_backend}:{options.voice}"
        speech = speak(text, options)
        save_wav(speech.audio, output)
        click.echo(
            f"wrote {output} ({speech.audio.duration:.1f} s, {len(speech.phonemes)} phonemes) "
            f"with {label}"
        )


@main.command()
@click.option("--lang", default=None, help="Only voices that speak this language.")
@click.option(
    "--gender",
    type=click.Choice(["male", "female", "neutral"]),
    default=None,
    help="Only voices of this gender presentation.",
)
@click.option("--all", "show_all", is_flag=True, help="Also list every espeak-ng variant.")
def voices(lang: str | None, gender: str | None, show_all: bool) -> None:
    """List the voices `--voice` accepts, the default for each language first: gender
    presentation, natural or synthetic, phoneme timings, languages and licence."""
    from facecast.speech import registry

    with _plain_errors():
        defaults = registry.languages()
        if lang is not None:
            default = registry.default_voice(lang)
            click.echo(f"default for {lang}: {default.id}")
            serving = [v for v in registry.catalogue() if registry.speaks(v, lang)]
            if not any(v.natural for v in serving):
                click.echo(f"only synthetic voices (espeak-ng, natural: false) speak {lang}")
        for voice in registry.catalogue():
            if lang is not None and not registry.speaks(voice, lang):
                continue
            if gender is not None and voice.gender != gender:
                continue
            if voice.variant and not show_all:
                continue
            codes = [code for code, choice in defaults.items() if choice.id == voice.id]
            languages = ", ".join(voice.languages[:8]) + (
                f" (+{len(voice.languages) - 8})" if len(voice.languages) > 8 else ""
            )
            flags = [voice.gender, "natural" if voice.natural else "synthetic (natural: false)"]
            flags += ["timings"] if voice.timings else []
            flags += ["clones"] if voice.cloning else []
            flags += [] if voice.commercial_use else ["commercial use unclear"]
            default_note = f"  default for: {', '.join(codes[:10])}" if codes else ""
            click.echo(f"{voice.id:<28} {', '.join(flags):<44} {languages}{default_note}")
            click.echo(f"{'':<28} licence: {voice.licence}")
        if not show_all:
            click.echo("(espeak-ng variants such as espeak:f3 are hidden; --all lists them)")


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
    with _plain_errors():
        if page:
            from facecast.live.console import open_page

            click.echo(f"Opened {open_page(server)}; pick {image} there.")
            return
        _require_consent(consent)
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

    with _plain_errors():
        run_worker(concurrency, [q.strip() for q in queues.split(",") if q.strip()], loglevel)


@main.group()
def models() -> None:
    """Model weights: what is present and verified, and how to get the rest."""


def _models_dir() -> Path:
    from facecast.config import get_settings

    return get_settings().models_dir


@models.command("list")
def models_list() -> None:
    """Every known model: present, verified, the backend it enables, licence, how to get it."""
    from facecast import weights
    from facecast.backends import model_users

    with _plain_errors():
        folder = _models_dir()
        click.echo(f"models dir: {folder}")
        users = model_users()
        for spec in weights.manifest():
            found = weights.status(spec, folder)
            state = "present" if found.present else "missing"
            checked = "verified" if found.verified else "NOT verified"
            backend = users.get(spec.name, "none")
            click.echo(f"{spec.name:26s} {state:8s} {checked:13s} backend={backend}")
            click.echo(f"    licence: {spec.licence}")
            click.echo(f"    source:  {spec.source}")
            if not found.present:
                click.echo(f"    missing: {', '.join(found.missing)}")
                click.echo(f"    get it:  {spec.how_to_get}")


@models.command("verify")
def models_verify() -> None:
    """Check every present file's sha256 against the pinned manifest; report unknown files."""
    from facecast import weights

    with _plain_errors():
        folder = _models_dir()
        bad = 0
        for spec in weights.manifest():
            for found in weights.status(spec, folder).files:
                if not found.present:
                    continue
                verdict = "ok" if found.verified else f"FAILED: {found.problem}"
                bad += not found.verified
                click.echo(f"{verdict:8s} {found.location}")
        for rel, expected in sorted(weights.trusted(folder).items()):
            path = folder / rel
            if any(rel == f.path for m in weights.manifest() for f in m.files):
                continue  # checked above with its model
            good = path.is_file() and weights.sha256_of(path) == expected
            bad += not good
            click.echo(f"{'ok' if good else 'FAILED:':8s} {path} (trusted by the operator)")
        for path in weights.unknown_files(folder):
            bad += 1
            click.echo(f"UNKNOWN  {path} (not in the manifest; never used)")
        if bad:
            raise FacecastError(f"{bad} file(s) failed verification.")


@models.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--trust",
    is_flag=True,
    help="Accept a file the manifest has no checksum for, or your own export of a pinned one "
    "(every .pth: it replaces a packaged network).",
)
def models_import(path: Path, trust: bool) -> None:
    """Copy (or convert) an operator's model file into the models dir."""
    from facecast import weights

    with _plain_errors():
        if path.suffix == ".pth":
            from facecast.weights.pth import bundled_network, import_pth

            destination = import_pth(path, _models_dir(), trust=trust)
            click.echo(f"imported {destination}")
            click.echo(f"note: it now replaces the packaged {bundled_network(path.stem)} weights")
        else:
            destination = weights.import_file(path, _models_dir(), trust=trust)
            click.echo(f"imported {destination}")


@models.command("fetch")
@click.argument("name")
def models_fetch(name: str) -> None:
    """Download model NAME from its pinned source (online machines only), keeping only files
    whose sha256 matches the manifest."""
    from tqdm import tqdm

    from facecast import weights

    bars: dict[str, tqdm] = {}

    def progress(file: str, done: int, total: int | None) -> None:
        bar = bars.get(file)
        if bar is None:
            bar = bars[file] = tqdm(total=total, desc=file, unit="B", unit_scale=True, leave=False)
        bar.update(done - bar.n)

    with _plain_errors():
        try:
            paths = weights.fetch(name, _models_dir(), progress)
        finally:
            for bar in bars.values():
                bar.close()
        for path in paths:
            click.echo(f"ok {path}")


if __name__ == "__main__":
    main()
