"""The `facecast` command: a thin shell over the pipeline and the service."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from facecast.errors import BackendUnavailableError, FacecastError

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


def _prosody_options(func: F) -> F:
    """--rate, --pitch and --volume; their bounds are checked by RenderOptions (one plain
    error line), declared once in facecast.options."""
    from facecast.options import (
        DEFAULT_PITCH,
        DEFAULT_RATE,
        DEFAULT_VOLUME,
        MAX_PITCH,
        MAX_RATE,
        MAX_VOLUME,
        MIN_PITCH,
        MIN_RATE,
        MIN_VOLUME,
    )

    decorators = [
        click.option(
            "--rate",
            type=float,
            default=DEFAULT_RATE,
            show_default=True,
            help=f"Speaking rate, {MIN_RATE:g}-{MAX_RATE:g} (2 = twice as fast; pitch kept).",
        ),
        click.option(
            "--pitch",
            type=float,
            default=DEFAULT_PITCH,
            show_default=True,
            help=f"Pitch shift in semitones, {MIN_PITCH:g} to {MAX_PITCH:g}.",
        ),
        click.option(
            "--volume",
            type=float,
            default=DEFAULT_VOLUME,
            show_default=True,
            help=f"Gain in dB, {MIN_VOLUME:g} to {MAX_VOLUME:g} (peaks stay below -1 dBFS).",
        ),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


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


class _Point(click.ParamType):
    """`x,y` in pixels."""

    name = "point"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        try:
            x, y = (float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a point written X,Y", param, ctx)
        return x, y


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
        click.option("--voice", default=None, help=VOICE_HELP),
        click.option(
            "--clone-voice",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="Speak --text in the voice of this 3-30 s recording (needs XTTS: the [xtts] "
            "extra and FACECAST_XTTS_MODEL_DIR, or a --server that has it).",
        ),
        _prosody_options,
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Same inputs and seed give the same video.",
        ),
        click.option(
            "--face",
            "face_index",
            type=click.IntRange(0, 63),
            default=None,
            help="Which face to animate: 0 is the largest (see `facecast faces`).",
        ),
        click.option(
            "--face-at",
            type=_Point(),
            default=None,
            metavar="X,Y",
            help="Animate the face at this point (pixels of the upright photo).",
        ),
        click.option("--renderer", default="warp", show_default=True, help="warp or liveportrait."),
        click.option("--refine", default=None, help="Mouth refinement: wav2lip."),
        click.option(
            "--upscale",
            type=click.Choice(["2", "4"]),
            default=None,
            help="Real-ESRGAN: output edge = size x this (slow on a CPU).",
        ),
        click.option("--no-restore", is_flag=True, help="Do not super-resolve a small face first."),
        click.option(
            "--force-cpu", is_flag=True, help="Render a long clip with a GPU renderer on the CPU."
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
        face_index=opts["face_index"],
        face_at=opts["face_at"],
        renderer=opts["renderer"],
        refine=opts["refine"],
        upscale=int(opts["upscale"]) if opts["upscale"] else None,
        restore=not opts["no_restore"],
        force_cpu=opts["force_cpu"],
        voice_sample=opts.get("clone_voice"),
        rate=opts["rate"],
        pitch=opts["pitch"],
        volume=opts["volume"],
    )


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
    from facecast.backends import check_options
    from facecast.pipeline import choose_voice, render_talking_head
    from facecast.video import mpegts_target

    stream = opts.pop("stream", None)
    if stream is not None and stream.isatty():
        raise FacecastError("--stream writes video: pipe it to a player, e.g. | ffplay -")
    streams = [mpegts_target(stream)] if stream is not None else []

    options = _options(opts)
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
        )
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    speed = result.duration / max(result.elapsed, 1e-9)
    click.echo(
        f"wrote {result.video} ({result.duration:.1f} s, {result.frames} frames) "
        f"in {result.elapsed:.1f} s ({speed:.1f}x real time)",
        err=stream is not None and getattr(stream, "name", None) == "<stdout>",
    )


def _say_cpu_cost(options: Any) -> None:
    """Slow backends on a machine without CUDA: say what to expect before starting."""
    from facecast import accel
    from facecast.backends import cpu_seconds_per_video_second

    cost = cpu_seconds_per_video_second(options)
    if cost and not accel.cuda_available():
        click.echo(
            f"note: no GPU here; this takes about {cost:.0f} s per second of video", err=True
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
    help="Portrait photo (JPEG, PNG, WebP, HEIC).",
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
        if audio is not None and (opts["rate"], opts["pitch"], opts["volume"]) != (1.0, 0.0, 0.0):
            raise FacecastError(
                "--rate, --pitch and --volume change synthesised speech: give --text."
            )
        if server is not None:
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
def faces(image: Path) -> None:
    """List the faces in IMAGE, largest first, with their boxes (for --face / --face-at)."""
    from facecast.pipeline import find_photo_faces

    with _plain_errors():
        found = find_photo_faces(image)
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
        _run_render(_demo_photo(), output, DEMO_TEXT, None, **opts)


@main.command(help=f"Speak TEXT into a WAV file.\n\n{VOICE_HELP}")
@click.option("--text", required=True, help="Text to speak.")
@click.option("--lang", default="de", show_default=True)
@click.option("--voice", default=None, help=VOICE_HELP)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("speech.wav"),
    show_default=True,
)
@click.option(
    "--clone-voice",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Speak in the voice of this 3-30 s recording (needs XTTS: the [xtts] extra and "
    "FACECAST_XTTS_MODEL_DIR).",
)
@_prosody_options
def tts(
    text: str,
    lang: str,
    voice: str | None,
    output: Path,
    clone_voice: Path | None,
    rate: float,
    pitch: float,
    volume: float,
) -> None:
    """Speak TEXT into a WAV file."""
    from facecast.audio import save_wav
    from facecast.options import RenderOptions
    from facecast.pipeline import synthesize
    from facecast.speech.registry import resolve_voice
    from facecast.speech.voicing import Prosody

    with _plain_errors():
        prosody = Prosody(rate, pitch, volume)
        if clone_voice is not None:
            backend = _cloning(RenderOptions(lang=lang)).speech_backend
            voice, label = None, f"{backend} (cloned from {clone_voice.name})"
        else:
            choice = resolve_voice(lang, voice)
            backend, voice, label = choice.backend, choice.voice, choice.id
        speech = synthesize(text, lang, voice, backend, clone_voice, prosody)
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
            if voice.backend == "espeak" and voice.name != "default" and not show_all:
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

    with _plain_errors():
        folder = _models_dir()
        click.echo(f"models dir: {folder}")
        for spec in weights.manifest():
            found = weights.status(spec, folder)
            state = "present" if found.present else "missing"
            checked = "verified" if found.verified else "NOT verified"
            click.echo(f"{spec.name:26s} {state:8s} {checked:13s} backend={spec.backend}")
            click.echo(f"    licence: {spec.licence}")
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
    help="Accept a file the manifest has no checksum for, or your own export of a pinned one.",
)
def models_import(path: Path, trust: bool) -> None:
    """Copy (or convert) an operator's model file into the models dir."""
    from facecast import weights

    with _plain_errors():
        if path.suffix == ".pth":
            from facecast.weights.pth import import_pth

            destination = import_pth(path, _models_dir())
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
