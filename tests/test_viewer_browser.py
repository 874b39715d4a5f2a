"""The slice viewer in a real browser: JupyterLab in Chromium (driven by Playwright) runs a notebook that
builds a SliceViewer, the slice slider is moved with the arrow keys, and the picture on screen must change.

This is the check that the widget works where learners use it (kernel <-> browser round trip, PNG
updates), which no kernel-only test can see. Chromium comes from the system (Debian's `chromium`; the
Makefile installs it on CI); Playwright's own browser download is not used. Without Chromium the test is
skipped with the reason, except on CI (CI=true), where it fails instead.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

CHROMIUM = "/usr/bin/chromium"
# without these Chromium tries the network (updates, sync, QUIC) and stalls on a machine without it
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KERNEL = "aunet"
TIMEOUT_MS = 120_000  # kernel start + imports (torch) on a busy 2-core machine

NOTEBOOK_CODE = """\
%matplotlib inline
import numpy as np
from aunet.viz.viewer import SliceViewer

x, y, z = np.meshgrid(np.arange(24), np.arange(20), np.arange(12), indexing="ij")
image = (-150 + 12 * x + 6 * y + 40 * z).astype(np.float32)  # every axial slice differs
label = np.zeros(image.shape, np.uint8)
label[6:14, 5:12, 2:10] = 2
viewer = SliceViewer(image, (1.0, 1.0, 2.5), label=label)
viewer
"""


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _require(ok: bool, reason: str) -> None:
    """Skip with `reason` on a user's machine; fail on CI, where the browser test must run."""
    if not ok:
        (pytest.fail if _on_ci() else pytest.skip)(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(port: int, server: subprocess.Popen, log: Path, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"JupyterLab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"JupyterLab did not answer on port {port} within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def chromium() -> str:
    """The system Chromium's path; skipped (fails on CI) without it or without Playwright."""
    executable = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    _require(executable is not None,
             f"no Chromium at {CHROMIUM} (install it: sudo apt-get install chromium); the browser widget test needs it")
    _require(importlib.util.find_spec("playwright") is not None,
             "the playwright package is not installed (pip install -r requirements.txt)")
    return executable


@pytest.fixture
def lab(chromium: str, tmp_path: Path):
    """A JupyterLab server on a free port serving a temp folder that holds viewer.ipynb; yields its URL."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK_CODE)])
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python (aunet)", "language": "python"}
    root = tmp_path / "root"
    root.mkdir()
    nbformat.write(nb, root / "viewer.ipynb")
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),  # no user settings or workspaces leak in
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws")}
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
             "--LabApp.news_url=None", "--LabApp.expose_app_in_browser=True", "--allow-root"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # own group: kernels stop with it
    try:
        _wait_for_server(port, server, log)
        yield f"http://127.0.0.1:{port}", log
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.slow
def test_slider_moves_the_picture_in_jupyterlab(chromium: str, lab, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    url, log = lab
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(  # fresh profile: no state from any earlier run
            str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{url}/lab/tree/viewer.ipynb")
            page.wait_for_selector(".jp-Notebook")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel")
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

            slider = page.locator(".widget-slider").filter(
                has=page.locator("label.widget-label", has_text=re.compile(r"^\s*slice\s*$")))
            expect(slider).to_have_count(1)
            readout = slider.locator(".widget-readout")
            picture = page.locator("img.widget-image")
            expect(picture).to_be_visible()
            page.wait_for_function("() => { const i = document.querySelector('img.widget-image');"
                                   " return i && i.complete && i.naturalWidth > 0; }")
            before_value, before_src = readout.inner_text().strip(), picture.get_attribute("src")
            before_shot = picture.screenshot()

            slider.locator(".noUi-handle").focus()
            for _ in range(3):
                page.keyboard.press("ArrowRight")
            expect(readout).to_have_text(str(int(before_value) + 3))
            page.wait_for_function(
                "(src) => { const i = document.querySelector('img.widget-image');"
                " return i.getAttribute('src') !== src && i.complete && i.naturalWidth > 0; }", arg=before_src)
            after_shot = picture.screenshot()
            # the browser's float sliders must not have pushed a rounded W/L back (that would read as "custom")
            window = page.locator(".widget-dropdown").filter(has=page.locator("label.widget-label", has_text="window"))
            expect(window.locator("select")).to_have_value("abdomen")
        finally:
            browser.close()
    assert after_shot != before_shot, (
        f"the picture on screen did not change after the slider moved\n{log.read_text()[-2000:]}")
