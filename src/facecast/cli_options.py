"""The command line's flags for RenderOptions' fields, and the options back from them.

Every field with a flag (facecast.options.Edge.flag) becomes one: a switch for a yes/no
option (`--restore/--no-restore` when it is on by default), a path for a file or a recording,
otherwise a value whose metavar shows its bounds or choices. The values are checked by
RenderOptions itself, so a bad one is the same plain sentence here as in the library.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import click
from pydantic.fields import FieldInfo

from facecast.errors import FacecastError
from facecast.options import Edge, RenderOptions, bounds, field_infos, option_fields

F = TypeVar("F", bound=Callable[..., Any])


def _plain_type(annotation: Any) -> Any:
    """`X | None` -> X (the flag leaves None to the default)."""
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = [a for a in get_args(annotation) if a is not type(None)]
        return kinds[0] if len(kinds) == 1 else str
    return annotation


def _metavar(kind: Any, info: FieldInfo, edge: Edge) -> str | None:
    if edge.wire is not None:
        return edge.wire.metavar
    if get_origin(kind) is Literal:
        return "|".join(map(str, get_args(kind)))
    low, high = bounds(info)
    if low is not None and high is not None:
        return f"{_number(low)}..{_number(high)}"
    return None


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _flag(name: str, info: FieldInfo, edge: Edge) -> Callable[[F], F]:
    """One field as a click option whose parameter is the field's name."""
    flag = edge.flag or name.replace("_", "-")
    kind = _plain_type(info.annotation)
    help_text = info.description
    if kind is bool:
        if info.default:
            return click.option(f"--{flag}/--no-{flag}", name, default=True, help=help_text)
        return click.option(f"--{flag}", name, is_flag=True, help=help_text)
    if edge.file or kind is Path:
        path = click.Path(exists=True, dir_okay=False, path_type=Path)
        return click.option(f"--{flag}", name, type=path, default=None, help=help_text)
    simple = kind if kind in (int, float) else str
    return click.option(
        f"--{flag}",
        name,
        type=simple,
        default=info.default,
        show_default=info.default is not None,
        metavar=_metavar(kind, info, edge),
        help=help_text,
    )


def option_flags(
    options: type[RenderOptions] = RenderOptions, *, speech_only: bool = False
) -> Callable[[F], F]:
    """A decorator adding a flag for each option of `options` that has one (only the speech
    options with `speech_only`, as `facecast tts` takes), in declared order."""
    infos = field_infos(options)
    flags = [
        _flag(item.name, infos[item.name], edge)
        for item, edge in option_flags_of(options, speech_only)
    ]

    def decorate(func: F) -> F:
        for add in reversed(flags):
            func = add(func)
        return func

    return decorate


def option_flags_of(options: type[RenderOptions], speech_only: bool) -> list[tuple[Any, Edge]]:
    """The fields of `options` that have a flag (the speech ones with `speech_only`)."""
    return [
        (item, edge)
        for item, edge in option_fields(options)
        if edge.flag is not None and (edge.speech or not speech_only)
    ]


def chosen(
    values: dict[str, Any],
    options: type[RenderOptions] = RenderOptions,
    *,
    speech_only: bool = False,
) -> dict[str, Any]:
    """RenderOptions arguments from a command's parsed flags (a file option read as UTF-8
    text; a flag left without a value left to the option's default)."""
    arguments: dict[str, Any] = {}
    for item, edge in option_flags_of(options, speech_only):
        value = values.get(item.name)
        if value is None:
            continue
        if edge.file:
            try:
                value = Path(value).read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise FacecastError(f"{value}: --{edge.flag or item.name} is UTF-8 text.") from None
        arguments[item.name] = value
    return arguments
