"""Atomic file writes: a temporary file in the same folder, fsync, then ``os.replace``.

A reader never sees a half-written file, and a killed process leaves at most a ``.tmp-*`` file behind,
which is never read (and is swept by :func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"
_HOST = "".join(c if c.isalnum() else "_" for c in os.uname().nodename)[:40]


def current_umask() -> int:
    """The process's umask, read without changing it (``/proc/self/status``; elsewhere set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating parent folders. The file gets the permissions ``open()`` would
    give it (0666 less the umask), not the temporary file's private 0600, so a group's shared folder stays readable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{_HOST}~{os.getpid()}-", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write JSON (sorted keys, indented, trailing newline) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def append_lines(path: str | Path, lines: list[str]) -> None:
    """Append ``lines`` with a single ``write`` call and one fsync.

    A kill can at worst leave a truncated last line without its newline; readers of such files
    (``samples.jsonl``) drop a last line that does not end in a newline.
    """
    if not lines:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(line.rstrip("\n") + "\n" for line in lines).encode("utf-8")
    with open(path, "ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def append_line(path: str | Path, line: str) -> None:
    """Append one line (see :func:`append_lines`)."""
    append_lines(path, [line])


def _writer_alive(name: str) -> bool:
    """Whether the writer of a temporary named ``.tmp-<host>~<pid>-...`` may still be writing it."""
    owner = name[len(TMP_PREFIX) :].split("-", 1)[0]
    host, _, pid = owner.rpartition("~")
    if host != _HOST or not pid.isdigit():
        return True  # another machine's (a shared file system) or an unknown writer: left alone unless old
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | Path, max_age_s: float = 86_400.0) -> int:
    """Delete ``.tmp-*`` files left by killed writers under ``folder``; returns how many.

    A temporary is stale when its writer (host and pid are in its name) is a dead process of this machine, or
    when it is older than ``max_age_s``; a concurrent cell's file being written is never touched.
    """
    import time

    count = 0
    for tmp in Path(folder).rglob(f"{TMP_PREFIX}*"):
        try:
            old = time.time() - tmp.stat().st_mtime > max_age_s
        except FileNotFoundError:
            continue
        if old or not _writer_alive(tmp.name):
            tmp.unlink(missing_ok=True)
            count += 1
    return count


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if needed) for the ``with`` block.

    Serialises read-modify-write steps of concurrent cells on one folder (score files of one run store, the
    tables of one results folder). POSIX ``flock``; released by the kernel when a holder is killed.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def check_writable(folder: str | Path, what: str) -> None:
    """Create ``folder`` if needed and write and remove a temporary file in it, or raise one
    :class:`~t2ibench.errors.T2IBenchError` line naming the folder (a run checks this before it generates)."""
    from t2ibench.errors import T2IBenchError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{_HOST}~{os.getpid()}-", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise T2IBenchError(f"the {what} {folder} is not writable ({err.strerror or err})") from None


@contextlib.contextmanager
def held_lock(path: str | Path, what: str, log: Any = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block, recording the holder (host, pid) beside it; when another
    live process holds it, say who and wait for it (a lock of a dead process is released by the kernel, so a stale
    lock is taken over at once)."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = path.with_name(path.name + ".holder")
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = holder.read_text().strip() if holder.exists() else "another process"
            if log is not None:
                log.warning("%s is being run by %s: waiting for it to finish", what, who)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            holder.write_text(f"{os.uname().nodename} pid {os.getpid()}\n")
            yield
        finally:
            holder.unlink(missing_ok=True)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
