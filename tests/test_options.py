"""Each option is declared once, in facecast.options.RenderOptions: a field added there shows
up in the CLI's help and flags, the /animate and /tts forms, the OpenAPI schema, the Python
client's form and the cache keys, with no other edit.

(No `from __future__ import annotations` here: the endpoints below annotate with form models
made at run time, which FastAPI must see as objects, not names.)
"""

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import click
import pytest
from click.testing import CliRunner
from fastapi import FastAPI, Form
from fastapi.testclient import TestClient
from pydantic import Field
from pydantic.dataclasses import dataclass

from facecast.cli import main
from facecast.cli_options import chosen, option_flags
from facecast.client import form_fields as _form
from facecast.options import (
    RESULT_AND_RIG,
    Edge,
    Key,
    RenderOptions,
    form_text,
    option_fields,
)
from facecast.pipeline import photo_key
from facecast.service.forms import animate_form, chosen_options, speech_form

OPENAPI = Path(__file__).resolve().parents[1] / "openapi.json"


@dataclass(frozen=True)
class WithCaptions(RenderOptions):
    """RenderOptions plus two options, each added as one field (as a new option is)."""

    karaoke: Annotated[
        bool, Field(description="Burn the spoken words into the video as karaoke.")
    ] = False
    caption_size: Annotated[
        int,
        Field(ge=10, le=80, description="Caption height in pixels."),
        Edge(RESULT_AND_RIG),
    ] = 24
    whisper: Annotated[
        float, Field(ge=0, le=1, description="How much breath to add."), Edge(speech=True)
    ] = 0.0


def _help(options: type[RenderOptions], speech_only: bool = False) -> str:
    @click.command()
    @option_flags(options, speech_only=speech_only)
    def command(**opts: Any) -> None:
        click.echo(json.dumps(chosen(opts, options, speech_only=speech_only)))

    return CliRunner().invoke(command, ["--help"]).output


def test_a_new_field_is_a_cli_flag() -> None:
    shown = _help(WithCaptions)
    assert "--karaoke" in shown and "Burn the spoken words" in shown
    assert "--caption-size 10..80" in shown and "[default: 24]" in shown
    assert "--whisper 0..1" in shown and "--whisper" in _help(WithCaptions, speech_only=True)
    assert "--karaoke" not in _help(WithCaptions, speech_only=True)  # not about speech

    @click.command()
    @option_flags(WithCaptions)
    def render(**opts: Any) -> None:
        options = WithCaptions(**chosen(opts, WithCaptions))
        click.echo(f"{options.karaoke} {options.caption_size} {options.fps}")

    runner = CliRunner()
    assert runner.invoke(render, ["--karaoke", "--caption-size", "40"]).output == "True 40 25\n"
    refused = runner.invoke(render, ["--caption-size", "90"])
    assert "caption_size must be between 10 and 80, not 90." in str(refused.exception)


def test_a_new_field_is_a_form_field_and_in_openapi() -> None:
    form = animate_form(WithCaptions)
    assert {"karaoke", "caption_size", "whisper"} <= form.model_fields.keys()
    assert "whisper" in speech_form(WithCaptions).model_fields
    assert "karaoke" not in speech_form(WithCaptions).model_fields
    app = FastAPI()

    @app.post("/animate")
    def animate(form: Annotated[form, Form()]) -> dict[str, Any]:  # type: ignore[valid-type]
        return dataclasses.asdict(WithCaptions(**chosen_options(form, WithCaptions)))

    schema = app.openapi()["components"]["schemas"]["AnimateForm"]["properties"]
    assert schema["karaoke"] == {
        "type": "boolean",
        "default": False,
        "description": "Burn the spoken words into the video as karaoke.",
        "title": "Karaoke",
    }
    size = schema["caption_size"]["anyOf"][0]
    assert (size["minimum"], size["maximum"]) == (10, 80)
    client = TestClient(app)
    sent = client.post("/animate", data={"karaoke": "true", "caption_size": "30", "fps": ""})
    assert sent.status_code == 200, sent.text
    assert (sent.json()["karaoke"], sent.json()["caption_size"], sent.json()["fps"]) == (
        True,
        30,
        25,
    )
    assert client.post("/animate", data={"caption_size": "9"}).status_code == 422


def test_a_new_field_travels_in_the_clients_form() -> None:
    fields = _form(WithCaptions(karaoke=True, caption_size=30, seed=7, restore=False), True)
    assert (fields["karaoke"], fields["caption_size"]) == ("true", "30")
    assert (fields["seed"], fields["restore"]) == ("7", "false")
    assert "karaoke" not in form_text(WithCaptions())  # the default: the service assumes it


def test_a_new_field_changes_the_keys_it_is_marked_for(tmp_path: Path) -> None:
    plain, captioned, bigger = (
        WithCaptions(),
        WithCaptions(karaoke=True),
        WithCaptions(caption_size=40),
    )
    assert len({plain.fingerprint(), captioned.fingerprint(), bigger.fingerprint()}) == 3
    assert plain.cache_key(Key.RIG) == captioned.cache_key(Key.RIG)  # karaoke: result only
    assert plain.cache_key(Key.RIG) != bigger.cache_key(Key.RIG)
    photo = tmp_path / "photo.bin"
    photo.write_bytes(b"the same bytes")
    assert photo_key(photo, plain) == photo_key(photo, captioned) != photo_key(photo, bigger)


def test_every_option_reaches_its_edges() -> None:
    """The real app and CLI: every form option is in openapi.json's AnimateForm, every option
    with a flag is in `facecast render --help`, every speech option in `facecast tts --help`."""
    schemas = json.loads(OPENAPI.read_text())["components"]["schemas"]
    animate = schemas["AnimateForm"]["properties"]
    render_help = CliRunner().invoke(main, ["render", "--help"], terminal_width=200).output
    tts_help = CliRunner().invoke(main, ["tts", "--help"], terminal_width=200).output
    for item, edge in option_fields(RenderOptions):
        assert (item.name in animate) == edge.form, item.name
        if edge.flag is not None:
            flag = f"--{edge.flag or item.name.replace('_', '-')}"
            assert flag in render_help, flag
            assert (flag in tts_help) == edge.speech, flag
    assert {"seed", "restore"} <= animate.keys()  # a local render's options all travel


def test_result_key_is_every_option_but_the_voice_sample() -> None:
    """Reuse keys stay what they were before the options were declared once (stored cache
    entries still match): every field but the voice sample, as canonical JSON."""
    options = RenderOptions(size=256, face_at=(10.0, 20.5), rate=1.5, voice_sample=Path("x.wav"))
    fields = dataclasses.asdict(options)
    fields.pop("voice_sample")
    assert options.fingerprint() == json.dumps(fields, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rate": 2.5}, "rate must be between 0.5 and 2, not 2.5."),
        ({"size": 100}, "size must be between 128 and 2048, not 100."),
        ({"expression": "grin"}, "expression must be one of keep, neutral, not 'grin'."),
        ({"face_at": "left"}, "a point is written x,y in pixels, not 'left'"),
        ({"face_at": (-1.0, 5.0)}, "the point -1,5 is outside any photo"),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_option(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match="validation error") as refused:
        RenderOptions(**fields)
    assert message in str(refused.value)


def test_the_live_form_takes_its_options_from_render_options() -> None:
    from facecast.service.forms import LIVE_OPTIONS, live_form

    live = live_form().model_fields
    assert set(live) == {"offer", "consent"} | LIVE_OPTIONS
    animate = animate_form().model_fields
    for name in LIVE_OPTIONS:  # the same declaration: type, bounds, help
        assert repr(live[name].annotation) == repr(animate[name].annotation), name
        assert live[name].description == animate[name].description, name
