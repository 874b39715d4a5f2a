"""Atomic file writing and one writer at a time: a reader never sees half a checkpoint, table or config.

`atomic_write` and friends replace a file in one rename; `exclusive_lock` lets one process at a time write a
folder (aunet.run.RunFolder), through an OS advisory lock that the kernel drops when its holder dies, so a
killed process never leaves a stale lock behind.
"""
from __future__ import annotations

import csv
import fcntl
import io
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from aunet.errors import AunetError

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_csv(path: str | Path, rows: Sequence[Mapping[str, object]]) -> None:
    """Write rows (dicts with the same keys) as a CSV file with a header, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def refuse_nonempty(out: str | Path, overwrite: bool) -> None:
    """AunetError when `out` is a non-empty folder and `overwrite` is not set."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        from aunet.errors import AunetError

        raise AunetError(f"{out}: already exists and is not empty; choose another --out or pass --overwrite.")


@contextmanager
def atomic_folder(out: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `out` to fill; on success it replaces `out`, on error it is dropped.

    A reader sees the old folder or the finished new one, never a half-written one.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o777 & ~_UMASK)  # mkdtemp makes it private; a dataset folder should be readable like any other
    try:
        yield tmp
        if out.exists():  # swap the finished folder in, then drop the old one
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def file_digest(path: str | Path, algorithm: str = "sha256", progress: bool = False) -> str:
    """The hex digest of a file ("sha256", "md5", ...), read in 1 MiB blocks, with an optional progress bar."""
    import hashlib

    from tqdm.auto import tqdm

    path = Path(path)
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                     desc=f"{algorithm} {path.name}", disable=not progress, leave=False) as bar:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


@contextmanager
def exclusive_lock(path: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive advisory lock (flock) on `path`, which records the holder's pid; refuse when held.

    `what` names the thing locked in the refusal ("Run folder results/runs/x"). The lock is the kernel's:
    it goes with the holder's process, however that ends (a SIGKILL included), and the file that remains
    is only a name to lock. Not reentrant: callers keep one lock per path and process.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
    except OSError as e:
        raise AunetError(f"{what} cannot be written ({e.strerror}: {path}); expected a writable folder.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            by = f"process {holder}" if holder.isdigit() else "another process"
            raise AunetError(f"{what} is being written by {by}; wait for it to finish or use another folder "
                             f"(one writer per folder).") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # before unlocking: the next holder writes its own pid
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
