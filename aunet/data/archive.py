"""Safe extraction of a dataset tar: every member checked before anything is written.

Python's `tarfile.extractall` writes whatever a tar names: `../../.bashrc`, `/etc/passwd`, a symlink
to anywhere followed by a file written through it. aunet refuses such an archive outright, in the
spirit of `tarfile`'s "data" filter but stricter: only regular files and folders, at relative paths
without `..`, inside the destination; links (symbolic or hard), devices and FIFOs are refused. The
check reads every header first, so a refused archive leaves nothing behind. macOS resource forks
(`._*`, in the Decathlon tars) are skipped. Files are written into a temporary folder that is renamed
into place only when complete (`aunet.io.atomic_folder`).

    extract_tar(Path("Task07_Pancreas.tar"), Path("data/Task07_Pancreas"))   # strips the top folder
"""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Callable

from aunet.errors import AunetError
from aunet.io import atomic_folder


def is_macos_resource(name: str) -> bool:
    """True for AppleDouble files (`._name`) that macOS leaves in archives; they are not data."""
    return PurePosixPath(name).name.startswith("._")


def unsafe_reason(member: tarfile.TarInfo) -> str | None:
    """Why `member` may not be extracted (absolute path, `..`, link, device), or None when it may."""
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "has a '..' component that leaves the destination"
    if member.issym() or member.islnk():
        return f"is a {'symbolic' if member.issym() else 'hard'} link (to {member.linkname!r})"
    if member.ischr() or member.isblk() or member.isfifo():
        return "is a device or FIFO"
    if not (member.isreg() or member.isdir()):
        return f"has tar type {member.type!r}, not a file or folder"
    return None


def safe_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """All members, after checking each; AunetError naming the first unsafe one."""
    try:
        members = tar.getmembers()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise AunetError(f"{archive}: cannot read the tar ({e}); the file is damaged or not a tar.") from None
    for member in members:
        reason = unsafe_reason(member)
        if reason:
            raise AunetError(f"{archive}: member {member.name!r} {reason}; refusing the archive (nothing was "
                             "extracted).")
    return members


def common_top(members: list[tarfile.TarInfo]) -> str:
    """The single top-level folder that holds every member ("" when there is none)."""
    tops = {PurePosixPath(m.name).parts[0] for m in members if PurePosixPath(m.name).parts}
    if len(tops) != 1:
        return ""
    top = tops.pop()
    return top if all(m.isdir() or len(PurePosixPath(m.name).parts) > 1 for m in members) else ""


def extract_tar(archive: str | Path, out: str | Path, strip_top: bool = True,
                skip: Callable[[str], bool] = is_macos_resource, finish: Callable[[Path], None] | None = None,
                progress: bool = True) -> Path:
    """Check every member, then extract the archive into `out` (its single top folder stripped); returns `out`.

    finish(tmp) runs on the complete temporary folder before it is renamed to `out` (to add files, or refuse it).
    """
    from tqdm.auto import tqdm

    archive, out = Path(archive), Path(out)
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise AunetError(f"{archive}: cannot open it as a tar ({e}); expected the dataset's .tar file.") from None
    with tar:
        members = safe_members(tar, archive)
        top = common_top(members) if strip_top else ""
        wanted = [m for m in members if not skip(m.name)]
        size = sum(m.size for m in wanted if m.isreg())
        with atomic_folder(out) as tmp, tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                                             desc=f"extract {archive.name}", disable=not progress) as bar:
            root = tmp.resolve()
            for member in wanted:
                parts = PurePosixPath(member.name).parts[1 if top else 0:]
                if not parts:
                    continue
                target = tmp.joinpath(*parts)
                if root not in target.resolve().parents:  # belt and braces: the checks above make this impossible
                    raise AunetError(f"{archive}: member {member.name!r} resolves outside {out}; refusing it.")
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with tar.extractfile(member) as source, open(target, "wb") as dest:
                        shutil.copyfileobj(source, dest, 1 << 20)
                except (tarfile.TarError, EOFError) as e:
                    raise AunetError(f"{archive}: member {member.name!r} is truncated ({e}); the tar is "
                                     "damaged.") from None
                bar.update(member.size)
            if finish is not None:
                finish(tmp)
    return out
