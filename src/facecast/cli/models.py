"""`facecast models`: list, verify, import and fetch the model files of the optional backends."""

from __future__ import annotations

from pathlib import Path

import click

from facecast.cli.base import main, plain_errors
from facecast.errors import FacecastError


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

    with plain_errors():
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

    with plain_errors():
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

    with plain_errors():
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

    with plain_errors():
        try:
            paths = weights.fetch(name, _models_dir(), progress)
        finally:
            for bar in bars.values():
                bar.close()
        for path in paths:
            click.echo(f"ok {path}")
