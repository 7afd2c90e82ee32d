"""`facecast tts` and `facecast voices`: speech without a video, and the installed voices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from facecast.cli.base import (
    TEXT_FILE_OPTION,
    VOICE_HELP,
    check_output,
    cloning,
    main,
    plain_errors,
    text_input,
)
from facecast.cli_options import chosen, option_flags
from facecast.errors import FacecastError


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

    with plain_errors():
        text = text_input(text, text_file)
        if text is None:
            raise FacecastError("Give --text (`-` reads standard input) or --text-file.")
        options = RenderOptions(**chosen(opts, speech_only=True))
        if options.lexicon:
            script.parse_lexicon(options.lexicon)
        if show_text:
            click.echo(script.spoken_text(script.prepare(text, options.lang, options.lexicon)))
            return
        check_output(output)
        if options.voice_sample is not None:
            options = cloning(options)
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

    with plain_errors():
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
