"""`facecast render`, `facecast faces` and `facecast demo`: one video (or its first frame) from
a photo, locally or through a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from facecast.cli.base import (
    DEMO_TEXT,
    TEXT_FILE_OPTION,
    check_output,
    main,
    plain_errors,
    render_options,
    require_consent,
    run_remote,
    run_render,
    server_options,
    text_input,
    transcript_input,
    write_preview,
)
from facecast.errors import FacecastError


def _demo_photo() -> Path:
    """The Grace Hopper portrait that ships inside matplotlib's wheel."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


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
@render_options
@server_options
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
    with plain_errors():
        if preview:
            write_preview(image, output, server, api_key, opts)
            return
        text = text_input(text, text_file)
        if (text is None) == (audio is None):
            raise FacecastError("Give exactly one of --text, --text-file or --audio.")
        opts["transcript"] = transcript_input(transcript, transcript_file, audio, opts)
        if audio is not None and (opts["rate"], opts["pitch"], opts["volume"]) != (1.0, 0.0, 0.0):
            raise FacecastError(
                "--rate, --pitch and --volume change synthesised speech: give --text."
            )
        source = click.get_current_context().get_parameter_source("output")
        if opts.get("format") == "webm" and source is click.core.ParameterSource.DEFAULT:
            output = output.with_suffix(".webm")
        check_output(output)
        if server is not None:
            require_consent(consent)
            run_remote(server, api_key, image, output, text, audio, **opts)
        else:
            run_render(image, output, text, audio, **opts)


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

    with plain_errors():
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
@render_options
def demo(output: Path, **opts: Any) -> None:
    """Animate the Grace Hopper portrait from matplotlib saying a short German sentence."""
    with plain_errors():
        check_output(output)
        run_render(_demo_photo(), output, DEMO_TEXT, None, **opts)
