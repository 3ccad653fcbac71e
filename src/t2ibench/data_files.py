"""Dataset files: found locally or downloaded once, always verified by sha256, read with file/line errors.

Where a file is looked for, in order:
1. ``<data_dir>/<folder>/<filename>`` with ``data_dir`` = the benchmark's ``data_dir`` option or
   ``$T2IBENCH_DATA_DIR`` (a folder laid out like ``shared/datasets``: one subfolder per benchmark);
2. the user cache, ``$T2IBENCH_CACHE`` or ``~/.cache/t2ibench``, under ``datasets/<folder>/<filename>``;
3. otherwise it is downloaded from its public URLs (first that works) into the cache, unless offline
   (``T2IBENCH_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``), in which case the error says where to put it.

Every file is checked against its sha256 before use; a mismatch stops with an error naming the file
(``verify_sha256=False`` accepts it with a warning, and the actual hash is what gets recorded). A file whose
publisher gives no hash we could check (``sha256=None``: a Hugging Face dataset file at a pinned revision, whose
bytes were not reachable when it was declared) is accepted with its actual hash recorded, and a warning says so.
The readers below report malformed content with the file name and line number.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2ibench.atomic import atomic_write_bytes
from t2ibench.errors import T2IBenchError
from t2ibench.hashing import file_sha256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataFile:
    """A dataset file: where it lives under a data dir, its sha256 and its public download URLs; and, for a large
    file, its embedded sample (``sample``: a file of ``benchmarks/data/samples/``, the first rows of the public file
    unchanged, in its format) with what it holds and under which licence (``sample_note``)."""

    folder: str
    filename: str
    sha256: str | None  # None: no hash known (the revision in the URL pins it); the actual hash is recorded
    urls: tuple[str, ...]
    sample: str | None = None
    sample_note: str = ""
    archive: bool = False  # a zip: `t2ibench-data fetch` also extracts it into the folder of its name (see extract)

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.filename}"


@dataclass(frozen=True)
class ResolvedFile:
    """A located, verified file and the hash it actually has."""

    path: Path
    sha256: str
    verified: bool


def data_path(relpath: str, data_dir: str | Path | None = None) -> Path:
    """Where the data file or folder ``relpath`` (``genai_bench/images_1600/DALLE_3``) is: under the data dir when it
    is there, else in the cache (where ``t2ibench-data fetch`` puts it); nothing is downloaded."""
    root = data_root(data_dir)
    if root is not None and (root / relpath).exists():
        return root / relpath
    return cache_root() / relpath


def extract(found: ResolvedFile) -> Path:
    """The folder a verified zip is extracted into, ``<folder>/<zip stem>/`` beside it, extracted once (into a
    temporary folder renamed when complete, so an interrupted extraction is never taken for a whole one). A zip whose
    members all sit in one folder of the zip's own name (``DALLE_3/00001.jpeg`` in ``DALLE_3.zip``) is unwrapped.
    A member path that would leave the folder (absolute, or with ``..``) stops with an error."""
    import shutil
    import tempfile
    import zipfile

    target = found.path.with_suffix("")
    if target.is_dir():
        return target
    with zipfile.ZipFile(found.path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        for name in names:
            if name.startswith(("/", "\\")) or ".." in Path(name).parts:
                raise T2IBenchError(f"{found.path}: member {name!r} would be written outside its folder")
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            archive.extractall(scratch)
            inner = scratch / target.name
            top = {Path(n).parts[0] for n in names}
            source = inner if top == {target.name} and inner.is_dir() else scratch
            source.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    log.info("extracted %s into %s", found.path, target)
    return target


def offline() -> bool:
    """True when downloads are disabled (``T2IBENCH_OFFLINE`` or ``HF_HUB_OFFLINE`` set to 1/true/yes)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("T2IBENCH_OFFLINE", "HF_HUB_OFFLINE"))


def data_root(data_dir: str | Path | None = None) -> Path | None:
    """The local data folder: ``data_dir`` if given, else ``$T2IBENCH_DATA_DIR``, else None."""
    value = data_dir or os.environ.get("T2IBENCH_DATA_DIR")
    return Path(value).expanduser() if value else None


def cache_root() -> Path:
    """``$T2IBENCH_CACHE`` or ``~/.cache/t2ibench``, plus ``datasets``."""
    base = os.environ.get("T2IBENCH_CACHE") or Path.home() / ".cache" / "t2ibench"
    return Path(base) / "datasets"


def _check(path: Path, spec: DataFile, verify: bool) -> ResolvedFile:
    actual = file_sha256(path)
    if spec.sha256 is None:
        log.warning("%s: no sha256 is pinned for %s; using it with its sha256 %s recorded", path, spec.relpath, actual)
        return ResolvedFile(path, actual, False)
    if actual != spec.sha256:
        if verify:
            raise T2IBenchError(
                f"{path}: sha256 {actual} does not match the expected {spec.sha256} for {spec.relpath}; "
                "replace the file, or set benchmark.verify_sha256=false to use it anyway (its hash is then recorded)"
            )
        log.warning(
            "%s: sha256 %s differs from the expected %s; using it because verify_sha256=false",
            path,
            actual,
            spec.sha256,
        )
    return ResolvedFile(path, actual, actual == spec.sha256)


def download(url: str, timeout: float = 60.0) -> bytes:
    """The bytes at ``url`` (http/https only)."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"refusing to download from {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": "t2ibench"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
        return response.read()


def resolve(
    spec: DataFile, data_dir: str | Path | None = None, verify: bool = True, allow_download: bool = True
) -> ResolvedFile:
    """Locate (or download) and verify ``spec`` (see the module docstring)."""
    root = data_root(data_dir)
    if root is not None and (root / spec.relpath).is_file():
        return _check(root / spec.relpath, spec, verify)
    cached = cache_root() / spec.relpath
    if cached.is_file():
        return _check(cached, spec, verify)
    where = (
        f"{root / spec.relpath} (benchmark.data_dir / T2IBENCH_DATA_DIR)"
        if root
        else f"{cached}, or <dir>/{spec.relpath} with benchmark.data_dir=<dir> or T2IBENCH_DATA_DIR=<dir>"
    )
    if offline() or not allow_download:
        raise T2IBenchError(
            f"{spec.relpath} is not available offline: put the file at {where}; it can be downloaded from "
            f"{spec.urls[0] if spec.urls else '(no public URL)'} (sha256 {spec.sha256 or 'not pinned'}), e.g. with `t2ibench-data fetch {spec.folder}`"
        )
    errors = []
    for url in spec.urls:
        try:
            data = download(url)
        except Exception as err:  # network errors of every kind: try the next URL
            errors.append(f"{url}: {err}")
            continue
        actual = hashlib.sha256(data).hexdigest()
        if spec.sha256 is not None and actual != spec.sha256 and verify:
            errors.append(f"{url}: sha256 {actual} does not match {spec.sha256}")
            continue
        atomic_write_bytes(cached, data)
        log.info("downloaded %s from %s", spec.relpath, url)
        return _check(cached, spec, verify)
    raise T2IBenchError(f"could not download {spec.relpath}: {'; '.join(errors) or 'no URL'}; put the file at {where}")


# -- readers with file and line in their errors ------------------------------------------------
def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise T2IBenchError(f"{path}:{line}: not valid UTF-8 ({err.reason} at byte {err.start})") from None


def read_text(path: str | Path) -> str:
    """A file's UTF-8 text (a BOM is dropped); bad bytes and NUL characters are reported with their line."""
    path = Path(path)
    text = _decode(path, path.read_bytes()).removeprefix("\ufeff")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise T2IBenchError(f"{path}:{line}: a NUL character (\\x00); a text file holds none")
    return text


def text_lines(text: str) -> list[str]:
    """The lines of ``text`` split at ``\\n`` (and ``\\r\\n``) only: not at form feed, U+2028, U+0085 or the other
    separators ``str.splitlines`` also splits at, which are characters of a prompt, not line ends."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_lines(path: str | Path) -> list[tuple[int, str]]:
    """(line number, stripped text) of every line of a one-item-per-line file; blank lines are errors,
    except at the very end."""
    path = Path(path)
    lines = text_lines(read_text(path))
    while lines and not lines[-1].strip():
        lines.pop()
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise T2IBenchError(f"{path}:{number}: empty line")
        out.append((number, line.strip()))
    return out


def read_csv_rows(path: str | Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number of the row's start, row dict) of a CSV with a header that has every ``required`` column.
    A quoted field that is never closed is named with the line where it opens (instead of the shifted field count
    that a lenient reader would report at the end of the file)."""
    path = Path(path)
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""), strict=True)
    start = 2
    try:
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise T2IBenchError(
                f"{path}:1: missing column(s) {', '.join(missing)}; the header has {', '.join(header) or 'nothing'}"
            )
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                got = len(row) + len(row.get(None) or []) - (None in row) - sum(v is None for v in row.values())
                raise T2IBenchError(f"{path}:{start}: expected {len(header)} fields, got {got}")
            yield start, row
            start = reader.line_num + 1
    except csv.Error as err:
        if "unexpected end of data" in str(err) or "EOF" in str(err):
            raise T2IBenchError(
                f"{path}:{start}: a quoted field opened on this line is never closed (a missing '\"'); "
                'quote a field as "..." and write a quote inside it as ""'
            ) from None
        raise T2IBenchError(f"{path}:{start}: malformed CSV ({err})") from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-blank line of a JSON-lines file."""
    path = Path(path)
    for number, line in enumerate(text_lines(read_text(path)), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise T2IBenchError(f"{path}:{number}: invalid JSON ({err.msg})") from None
        if not isinstance(value, dict):
            raise T2IBenchError(f"{path}:{number}: expected a JSON object")
        yield number, value


def read_json(path: str | Path) -> Any:
    """A JSON document; syntax errors name the file and line."""
    path = Path(path)
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise T2IBenchError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None


def convert(path: Path, line: int, column: str, value: str, kind: type) -> Any:
    """``kind(value)`` or an error naming file, line and column."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise T2IBenchError(f"{path}:{line}: column {column}: {value!r} is not a valid {kind.__name__}") from None
