"""`aunet data fetch msd-pancreas` against a local HTTP server (127.0.0.1) that answers Range requests.

The server is written here (http.server has no Range support). It serves a small fabricated
Task07_Pancreas.tar (three tiny NIfTI cases, dataset.json, macOS `._*` files), logs the Range header of
every request and the bytes it sent, and can close the socket halfway through a body.
"""
import hashlib
import http.server
import io
import json
import re
import tarfile
import threading

import nibabel as nib
import numpy as np
import pytest

from aunet.cli import main
from aunet.config import Config
from aunet.data import download as download_module
from aunet.data import prepare_dataset
from aunet.data.archive import extract_tar
from aunet.data.download import download
from aunet.data.nifti import save_nifti
from aunet.errors import AunetError

AFFINE = np.diag([2.0, 2.0, 3.0, 1.0])


class RangeServer(http.server.ThreadingHTTPServer):
    """Serves `payload` at any path; `cut_at` closes the connection after that many body bytes (once)."""

    def __init__(self, payload: bytes):
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.payload, self.cut_at, self.log = payload, None, []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/Task07_Pancreas.tar"


class RangeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        data, total = self.server.payload, len(self.server.payload)
        requested = self.headers.get("Range")
        start = 0
        if requested:
            start = int(re.fullmatch(r"bytes=(\d+)-", requested).group(1))
            if start >= total:
                self.server.log.append((requested, 0))  # logged before answering: the client may look at once
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(total - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        body = data[start:]
        cut = self.server.cut_at is not None
        if cut:  # a real cut: part of the body, then the socket is closed
            body, self.server.cut_at = body[:self.server.cut_at], None
        self.server.log.append((requested, len(body)))  # logged before sending: the client may look at once
        if cut:
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
        else:
            self.wfile.write(body)


@pytest.fixture
def server():
    servers = []

    def start(payload: bytes) -> RangeServer:
        srv = RangeServer(payload)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _add(tar: tarfile.TarFile, name: str, raw: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(raw)
    tar.addfile(info, io.BytesIO(raw))


def _nifti(tmp_path, data) -> bytes:
    save_nifti(tmp_path / "x.nii.gz", data, AFFINE)
    return (tmp_path / "x.nii.gz").read_bytes()


def task07_tar(tmp_path, cases: int = 3) -> bytes:
    """A Task07_Pancreas.tar in the Decathlon's layout, with `._*` files beside the NIfTI files."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    names = [f"pancreas_{i:03d}.nii.gz" for i in range(1, cases + 1)]
    meta = {"name": "Pancreas", "labels": {"0": "background", "1": "pancreas", "2": "cancer"},
            "numTraining": cases, "training": [{"image": f"./imagesTr/{n}", "label": f"./labelsTr/{n}"} for n in names],
            "test": ["./imagesTs/pancreas_900.nii.gz"]}
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("", "/imagesTr", "/labelsTr", "/imagesTs"):
            info = tarfile.TarInfo("Task07_Pancreas" + folder)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        _add(tar, "Task07_Pancreas/dataset.json", json.dumps(meta).encode())
        _add(tar, "Task07_Pancreas/._dataset.json", b"\x00\x05\x16\x07 AppleDouble")
        for name in names:
            label = np.zeros((12, 10, 8), np.uint8)
            label[3:7, 3:6, 2:5], label[4, 4, 3] = 1, 2
            _add(tar, f"Task07_Pancreas/imagesTr/{name}", _nifti(tmp_path, rng.integers(-1000, 1000, (12, 10, 8))
                                                                        .astype(np.int16)))
            _add(tar, f"Task07_Pancreas/labelsTr/{name}", _nifti(tmp_path, label))
            _add(tar, f"Task07_Pancreas/imagesTr/._{name}", b"\x00\x05\x16\x07 AppleDouble")
        _add(tar, "Task07_Pancreas/imagesTs/pancreas_900.nii.gz", _nifti(tmp_path, np.zeros((12, 10, 8), np.int16)))
    return buffer.getvalue()


def _fetch(dest, url, md5, *extra):
    return main(["data", "fetch", "msd-pancreas", "--dest", str(dest), "--url", url, "--md5", md5, "--quiet", *extra])


def test_fetch_unpacks_a_folder_that_check_accepts(tmp_path, server, capsys):
    payload = task07_tar(tmp_path)
    srv = server(payload)
    dest = tmp_path / "data"
    assert _fetch(dest, srv.url, hashlib.md5(payload).hexdigest()) == 0
    folder = dest / "Task07_Pancreas"
    assert "wrote 3 labelled cases" in capsys.readouterr().out
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [f"pancreas_00{i}.nii.gz" for i in (1, 2, 3)]
    assert not list(folder.rglob("._*")) and not (dest / "Task07_Pancreas.tar").exists()  # tar deleted after unpacking
    assert sorted(p.name for p in dest.iterdir()) == ["Task07_Pancreas"]  # no temporary folder or .part left
    assert sorted(p.name for p in (folder / "splits").iterdir()) == ["120_30.json"]  # 30_120 needs more cases
    assert main(["data", "check", str(folder), "--quiet"]) == 0
    report = capsys.readouterr().out
    assert "decathlon layout, 3 labelled case(s), 1 unlabelled test image(s) in imagesTs/, 0 problem(s)" in report
    # the paper's label map by name: pancreas and tumour both become the model's pancreas (2)
    cfg = Config.from_profile("quick", data_dir=str(folder), label_map="msd-pancreas", val_fraction=0.3,
                              test_fraction=0.3, cache_dir=str(tmp_path / "cache"))
    ds = prepare_dataset(cfg, progress=False)
    assert set(np.unique(ds.load("pancreas_001").label)) == {0, 2}
    # a second call on the complete folder does nothing, and says so
    requests = len(srv.log)
    assert _fetch(dest, srv.url, hashlib.md5(payload).hexdigest()) == 0
    assert "complete already (3 labelled cases); nothing to do" in capsys.readouterr().out
    assert len(srv.log) == requests


def test_cut_connection_is_resumed_on_the_next_call_without_the_first_half(tmp_path, server, capsys):
    payload = task07_tar(tmp_path)
    half = len(payload) // 2
    srv = server(payload)
    srv.cut_at = half
    target = tmp_path / "data" / "Task07_Pancreas.tar"
    with pytest.raises(AunetError, match="interrupted 1 time.*run the same command again to resume"):
        download(srv.url, target, hashlib.md5(payload).hexdigest(), retries=0, progress=False)
    part = target.with_name("Task07_Pancreas.tar.part")
    assert part.read_bytes() == payload[:half] and not target.exists()
    assert srv.log == [(None, half)]  # the server cut the body halfway
    assert _fetch(tmp_path / "data", srv.url, hashlib.md5(payload).hexdigest()) == 0  # the next call resumes
    assert srv.log[1] == (f"bytes={half}-", len(payload) - half)  # only the second half was requested
    assert sum(sent for _, sent in srv.log) == len(payload)  # no byte was sent twice
    assert main(["data", "check", str(tmp_path / "data" / "Task07_Pancreas"), "--quiet"]) == 0


def test_cut_connection_is_resumed_automatically(tmp_path, server):
    payload = task07_tar(tmp_path)
    srv = server(payload)
    srv.cut_at = len(payload) // 3
    path = download(srv.url, tmp_path / "t.tar", hashlib.md5(payload).hexdigest(), wait=0, progress=False)
    assert path.read_bytes() == payload
    assert srv.log == [(None, len(payload) // 3), (f"bytes={len(payload) // 3}-", len(payload) - len(payload) // 3)]


def test_complete_part_file_gets_a_416_and_is_verified(tmp_path, server):
    payload = task07_tar(tmp_path)
    srv = server(payload)
    srv.cut_at = len(payload)  # the whole body, then the socket closes: nothing missing
    target = tmp_path / "t.tar"
    target.with_name("t.tar.part").write_bytes(payload)
    state = {"url": srv.url, "md5": hashlib.md5(payload).hexdigest()}
    target.with_name("t.tar.part.json").write_text(json.dumps(state))
    assert download(srv.url, target, hashlib.md5(payload).hexdigest(), progress=False).read_bytes() == payload
    assert srv.log == [(f"bytes={len(payload)}-", 0)]


def test_wrong_md5_is_refused_naming_both_sums_with_nothing_extracted(tmp_path, server, capsys):
    payload = task07_tar(tmp_path)
    srv = server(payload)
    dest = tmp_path / "data"
    assert _fetch(dest, srv.url, "0" * 32) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "0" * 32 in err and hashlib.md5(payload).hexdigest() in err
    assert "nothing was extracted" in err
    assert sorted(p.name for p in dest.iterdir()) == []  # no folder, no bad download kept


def test_not_enough_disk_space_is_refused_before_downloading(tmp_path, server, monkeypatch, capsys):
    payload = task07_tar(tmp_path)
    srv = server(payload)
    monkeypatch.setattr(download_module.shutil, "disk_usage", lambda p: type("U", (), {"free": len(payload)})())
    assert _fetch(tmp_path / "data", srv.url, hashlib.md5(payload).hexdigest()) == 2  # the tar fits, unpacking it not
    err = capsys.readouterr().err
    assert "GB free" in err and "downloading Task07_Pancreas.tar and unpacking it" in err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["Task07_Pancreas.tar.part.json"]


def _evil_tar(path, member: tarfile.TarInfo, raw: bytes = b"") -> None:
    with tarfile.open(path, "w") as tar:
        _add(tar, "Task07_Pancreas/dataset.json", b"{}")
        tar.addfile(member, io.BytesIO(raw) if raw else None)
        _add(tar, "Task07_Pancreas/zzz.txt", b"after the bad member")


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_unsafe_members_are_refused_with_nothing_written(tmp_path, kind, capsys):
    member = tarfile.TarInfo({"dotdot": "Task07_Pancreas/../../escaped.txt", "absolute": str(tmp_path / "abs.txt")}
                             .get(kind, "Task07_Pancreas/imagesTr/link"))
    if kind in ("dotdot", "absolute"):
        member.size = 4
    elif kind in ("symlink", "hardlink"):
        member.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        member.linkname = str(tmp_path / "outside")
    else:
        member.type = tarfile.CHRTYPE
    tar = tmp_path / "dl" / "evil.tar"
    tar.parent.mkdir()
    _evil_tar(tar, member, b"evil" if member.size else b"")
    dest = tmp_path / "dl" / "out"
    md5 = hashlib.md5(tar.read_bytes()).hexdigest()
    args = ["data", "fetch", "msd-pancreas", "--dest", str(dest), "--from", str(tar), "--md5", md5, "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "refusing the archive (nothing was extracted)" in err and "\n" not in err
    assert not dest.exists() or not any(dest.iterdir())  # not even the members before the bad one
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert written in (["dl", "dl/evil.tar"], ["dl", "dl/evil.tar", "dl/out"])  # nothing outside either
    assert tar.is_file()  # the user's own tar is never deleted


def test_extract_skips_appledouble_files_and_strips_the_top_folder(tmp_path):
    tar = tmp_path / "t.tar"
    tar.write_bytes(task07_tar(tmp_path, cases=1))
    out = extract_tar(tar, tmp_path / "out", progress=False)
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert names == ["dataset.json", "imagesTr", "imagesTr/pancreas_001.nii.gz", "imagesTs",
                     "imagesTs/pancreas_900.nii.gz", "labelsTr", "labelsTr/pancreas_001.nii.gz"]
    assert nib.load(out / "labelsTr" / "pancreas_001.nii.gz").shape == (12, 10, 8)


def test_fetch_nih_says_how_to_get_the_files(tmp_path, capsys):
    assert main(["data", "fetch", "nih-pancreas", "--dest", str(tmp_path)]) == 2
    assert "NBIA Data Retriever" in capsys.readouterr().err
