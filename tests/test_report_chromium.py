"""End-to-end: `report.html` opened in real headless Chromium renders its figures.

Two checks, both in a real browser: (1) `--dump-dom` after load, where the report's inline script
has written `data-images-loaded="k/n"` on <body> (k = images with naturalWidth > 0): every image
must decode; (2) a screenshot at 1280x3200 (the paper-layout figure on top, then the headline
and the figures) must not be blank and must show each model's colour
(taken from the report's own data block) over many pixels, which only the figures contain.
Skipped with a reason when Debian's `chromium` is not installed (`.ci/run` installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                       "(apt-get install -y chromium; .ci/run does this)"),
]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium(args, tmp_path, name):
    ud = tmp_path / f"ud-{name}"
    r = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={ud}", *args], capture_output=True,
                       text=True, timeout=120)
    return r


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    from test_report import make_loop_runs

    from gaspprobe.reporting.report import report

    root = tmp_path_factory.mktemp("chromium")
    make_loop_runs(root / "loop")
    return report(root / "loop", root / "report", formats=("png",))


def test_every_image_decodes_in_chromium(report_html, tmp_path):
    n_img = len(re.findall(r"<img ", report_html.read_text()))
    assert n_img == 8   # the paper-layout figure + 7
    r = _chromium(["--virtual-time-budget=5000", "--dump-dom", report_html.as_uri()], tmp_path,
                  "dom")
    m = re.search(r'data-images-loaded="(\d+)/(\d+)"', r.stdout)
    assert m, f"no load marker in the DOM (rc={r.returncode}): {r.stderr[-500:]}"
    assert (int(m.group(1)), int(m.group(2))) == (n_img, n_img)


def test_screenshot_shows_the_figures(report_html, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    r = _chromium([f"--screenshot={shot}", "--window-size=1280,3200", report_html.as_uri()],
                  tmp_path, "shot")
    assert shot.is_file(), f"no screenshot (rc={r.returncode}): {r.stderr[-500:]}"
    px = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert px.shape[:2] == (3200, 1280)
    flat = px.reshape(-1, 3)
    assert len(np.unique(flat, axis=0)) > 500          # text, tables, figures: not a blank page
    data = json.loads(re.search(r'id="gaspprobe-data">(.*?)</script>', report_html.read_text(),
                                re.S).group(1))
    for m in data["models"]:
        rgb = np.array([int(m["color"][i:i + 2], 16) for i in (1, 3, 5)])
        near = (np.abs(flat - rgb).max(axis=1) <= 12).sum()
        # Lines and bars of the figures in the first 3200 px carry thousands of such pixels; the
        # tables are black on white/grey and cannot produce them.
        assert near > 2000, (m["name"], m["color"], int(near))
    # The figure region: below the paper box, rows with a model colour span a tall band.
    rows = np.where((np.abs(px - rgb).max(axis=2) <= 12).sum(axis=1) > 0)[0]
    assert rows.max() - rows.min() > 800
