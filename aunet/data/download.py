"""Resumable HTTP downloads for large datasets: Range requests, md5, disk space, a progress bar.

    download(url, Path("data/Task07_Pancreas.tar"), md5="4f70...")   # -> the verified file

The bytes go to `<name>.part` beside the target. An interrupted transfer (a dropped connection, a
timeout, a server error) is resumed from the bytes already on disk with `Range: bytes=N-`, a few
times with growing pauses, and again on the next call: a download is never restarted from zero
unless the server ignores Range requests or the file it serves changed. `<name>.part.json` records
what is being fetched (the URL, the md5 and the size the server announced) so that a later call can
tell whether the partial file belongs to it. The md5 is checked before the file gets its final name;
a mismatch removes the partial file and is refused in one sentence naming both sums.
"""
from __future__ import annotations

import errno
import http.client
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from aunet.errors import AunetError
from aunet.io import file_digest

BLOCK = 1 << 20  # bytes per read and per progress update
GB = 1e9


def check_md5(path: Path, expected: str, progress: bool = False) -> None:
    """AunetError naming both sums unless the file's md5 is `expected`."""
    actual = file_digest(path, "md5", progress)
    if actual != expected.lower():
        raise AunetError(f"{path}: md5 is {actual}, expected {expected.lower()}; the file is corrupt or another "
                         "file (nothing was extracted).")


def check_disk_space(folder: Path, needed: int, what: str) -> None:
    """AunetError when `folder`'s file system has fewer than `needed` free bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise AunetError(f"{folder}: {free / GB:.1f} GB free, {what} needs {needed / GB:.1f} GB; free some space "
                         "or choose another folder.")


def _total_from_content_range(value: str | None, start: int, url: str) -> int:
    """The full size from a 206 answer's `Content-Range: bytes START-END/TOTAL` (START must be `start`)."""
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", (value or "").strip())
    if not match or int(match.group(1)) != start:
        raise AunetError(f"{url}: answered a request for bytes {start}- with Content-Range {value!r}; expected "
                         f"'bytes {start}-END/TOTAL'.")
    return int(match.group(3))


class _Interrupted(Exception):
    """The transfer stopped before the announced size (retried)."""


def download(url: str, path: str | Path, md5: str | None = None, *, retries: int = 5, wait: float = 2.0,
             reserve: float = 0.0, timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch `url` into `path`, resuming `<path>.part` with Range requests; verify md5; return `path`.

    retries: resumptions after an interruption in this call (then AunetError; the next call goes on).
    reserve: free space needed afterwards, as a multiple of the file's size (1.0: room to unpack it).
    """
    path = Path(path)
    if path.is_file():
        if md5:
            check_md5(path, md5, progress)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part, state_path = path.with_name(path.name + ".part"), path.with_name(path.name + ".part.json")
    state = {"url": url, "md5": (md5 or "").lower()}
    state["size"] = _resumable_size(part, state_path, state)
    total: int | None = None
    for attempt in range(retries + 1):
        offset = part.stat().st_size if part.is_file() else 0
        try:
            total = _transfer(url, part, state_path, state, offset, reserve, timeout, progress)
            break
        except _Interrupted as e:
            if attempt == retries:
                done = part.stat().st_size if part.is_file() else 0
                raise AunetError(f"{url}: the download was interrupted {retries + 1} time(s) ({e}); the {_human(done)} "
                                 f"received are kept in {part}: run the same command again to resume.") from None
            time.sleep(wait * 2 ** attempt)
    if total is not None and part.stat().st_size != total:
        raise AunetError(f"{part}: holds {part.stat().st_size} bytes, the server announced {total}; delete it and "
                         "run again.")
    if md5:
        actual = file_digest(part, "md5", progress)
        if actual != md5.lower():
            part.unlink()
            state_path.unlink(missing_ok=True)
            raise AunetError(f"{url}: the downloaded file's md5 is {actual}, expected {md5.lower()}; it was deleted "
                             "and nothing was extracted (a damaged transfer or another file: run again, or check "
                             "--md5).")
    os.replace(part, path)
    state_path.unlink(missing_ok=True)
    return path


def _resumable_size(part: Path, state_path: Path, state: dict) -> int | None:
    """The full size recorded for the partial file, which is deleted if it belongs to another download."""
    if not part.exists():
        state_path.unlink(missing_ok=True)
        return None
    try:
        saved = json.loads(state_path.read_text())
    except (OSError, ValueError):
        saved = {}
    same = saved.get("md5") == state["md5"] if state["md5"] else saved.get("url") == state["url"]
    if not same:
        _say(f"{part}: a partial download of another file; starting this one afresh.")
        part.unlink()
        return None
    _say(f"{part}: resuming after {_human(part.stat().st_size)}.")
    return saved.get("size")


def _human(n: int) -> str:
    return f"{n / GB:.2f} GB" if n >= GB else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n} bytes"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _open(url: str, offset: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "aunet", "Accept-Encoding": "identity",
                                                   **({"Range": f"bytes={offset}-"} if offset else {})})
    return urllib.request.urlopen(request, timeout=timeout)


def _transfer(url: str, part: Path, state_path: Path, state: dict, offset: int, reserve: float, timeout: float,
              progress: bool) -> int | None:
    """One request from `offset` to the end; returns the full size, raises _Interrupted if cut short."""
    from tqdm.auto import tqdm

    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: complete already, or the part is longer than the file
            total = _total_from_range_error(e.headers.get("Content-Range"))
            if total == offset or (total is None and state.get("size") == offset):
                return offset
            _say(f"{part}: longer than the file on the server; starting afresh.")
            part.unlink()
            raise _Interrupted("the partial file did not fit the server's") from None
        if e.code >= 500:
            raise _Interrupted(f"HTTP {e.code}") from None
        raise AunetError(f"{url}: the server answered HTTP {e.code} ({e.reason}); expected the file "
                         "(check --url).") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        if isinstance(e, urllib.error.URLError) and not isinstance(getattr(e, "reason", None), OSError):
            raise AunetError(f"{url}: cannot be opened ({e.reason}); expected an http(s) URL.") from None
        raise _Interrupted(str(getattr(e, "reason", e))) from None
    with response:
        if response.status == 206:
            total = _total_from_content_range(response.headers.get("Content-Range"), offset, url)
        else:
            if offset:
                _say(f"{url}: the server ignores Range requests; downloading from the start.")
                offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length else None
        if state.get("size") not in (None, total):  # another file behind the same URL: the part is useless
            _say(f"{url}: the file on the server changed size ({state['size']} -> {total} bytes); starting afresh.")
            response.close()
            part.unlink(missing_ok=True)
            state["size"] = None
            raise _Interrupted("the file on the server changed")
        state["size"] = total
        state_path.write_text(json.dumps(state) + "\n")
        if total is not None:
            check_disk_space(part.parent, int(total - offset + reserve * total), f"downloading {part.name[:-5]}"
                             + (" and unpacking it" if reserve else ""))
        received = offset
        with open(part, "r+b" if offset else "wb") as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                                                 unit_divisor=1024, desc=part.name[:-5],
                                                                 disable=not progress) as bar:
            out.seek(offset)
            out.truncate()
            try:
                for block in iter(lambda: response.read(BLOCK), b""):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    raise AunetError(f"{part.parent}: the disk is full; free some space and run again to "
                                     "resume.") from None
                raise _Interrupted(f"{type(e).__name__} after {received} bytes") from None
            except (TimeoutError, http.client.HTTPException) as e:
                raise _Interrupted(f"{type(e).__name__} after {received} bytes") from None
    if total is not None and received < total:
        raise _Interrupted(f"connection closed after {received} of {total} bytes")
    return total if total is not None else received


def _total_from_range_error(value: str | None) -> int | None:
    match = re.fullmatch(r"bytes \*/(\d+)", (value or "").strip())
    return int(match.group(1)) if match else None
