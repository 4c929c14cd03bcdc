"""End-to-end: ``gaspprobe scenes check|convert|index|formats|show`` on dataset layouts written by
the formats' test writers, through the real entry point; and the scene index's flat memory."""

from __future__ import annotations

import json
import math
import shutil
import tracemalloc
from pathlib import Path

import pytest
import torch

from gaspprobe.cli import main
from gaspprobe.scenes import generate_scene, load_scenes, patch_matches
from gaspprobe.scenes.formats import FORMATS


def _run(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


@pytest.fixture(scope="module")
def scene():
    return generate_scene(3, frames=4, size=(48, 64))


@pytest.fixture(scope="module")
def root(scene, tmp_path_factory) -> Path:
    """A dataset root holding a nerfstudio folder, a CO3D category and an ARKitScenes video."""
    r = tmp_path_factory.mktemp("mixed") / "data"
    FORMATS.get("nerfstudio").write(scene, r / "capture")
    FORMATS.get("co3dv2").write(scene, r / "co3d" / "apple" / "1_2_3")
    FORMATS.get("arkitscenes").write(scene, r / "arkit" / "41069025")
    return r


def test_check_says_what_it_found(root, capsys):
    code, out, err = _run(["scenes", "check", root], capsys)
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln.startswith("ok ")]
    assert len(lines) == 3
    ns = next(ln for ln in lines if "[nerfstudio]" in ln)
    fx = 32 / math.tan(math.radians(65.0 / 2))  # the synthetic camera: 65 degrees horizontal
    assert "4 frames" in ns and "64x48" in ns and f"fx {fx:.2f}" in ns and "cx 31.50" in ns and "depth metric" in ns
    co = next(ln for ln in lines if "[co3dv2]" in ln)
    assert "apple_1_2_3" in co and "NOT metric" in co
    assert "3 scene(s) ok (arkitscenes: 1, co3dv2: 1, nerfstudio: 1)" in out


def test_check_reports_a_broken_scene_and_exits_2(root, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    tp = bad / "capture" / "transforms.json"
    meta = json.loads(tp.read_text())
    del meta["fl_x"]
    tp.write_text(json.dumps(meta))
    code, out, err = _run(["scenes", "check", bad], capsys)
    assert code == 2
    probs = [ln for ln in err.splitlines() if ln.startswith("problem")]
    assert len(probs) == 1 and "transforms.json" in probs[0] and "fl_x" in probs[0]
    assert "[co3dv2]" in out and "[arkitscenes]" in out and "Traceback" not in err


def test_convert_writes_the_scannet_layout(root, scene, tmp_path, capsys):
    out = tmp_path / "conv"
    code, stdout, err = _run(["scenes", "convert", root, out], capsys)
    assert code == 0, err
    assert "3 scene(s)" in stdout
    m = json.loads((out / "manifest.json").read_text())
    assert m["kind"] == "scenes" and m["status"] == "complete"
    assert sorted(m["scenes"]) == ["41069025", "apple_1_2_3", "capture"]
    conv = {s.name: s for s in load_scenes(out)}
    assert sorted(conv) == ["41069025", "apple_1_2_3", "capture"]
    assert all(len(list((out / n / "pose").glob("*.txt"))) == 4 for n in conv)  # ScanNet layout
    assert conv["apple_1_2_3"].metric is False and conv["capture"].metric is True
    for s in conv.values():
        a, b = patch_matches(scene, 0, 2, (6, 8)), patch_matches(s, 0, 2, (6, 8))
        assert torch.equal(a.src, b.src) and torch.equal(a.tgt, b.tgt)
    before = (out / "manifest.json").read_text()
    code, _, _ = _run(["scenes", "convert", root, out], capsys)  # same source: cached, untouched
    assert code == 0 and (out / "manifest.json").read_text() == before
    code, _, err = _run(["scenes", "convert", root / "capture", out], capsys)  # another source: refused
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(out) in err


def test_index_writes_parquet(root, tmp_path, capsys):
    import pandas as pd

    target = tmp_path / "idx" / "scenes.parquet"
    code, out, err = _run(["scenes", "index", root, "--out", target], capsys)
    assert code == 0, err
    assert "3 scene(s), 12 frames" in out
    df = pd.read_parquet(target).sort_values("scene")
    assert list(df.columns) == ["scene", "format", "frames", "height", "width", "fx", "fy", "cx", "cy", "metric", "path"]
    assert df["format"].tolist() == ["arkitscenes", "co3dv2", "nerfstudio"]
    assert df["frames"].tolist() == [4, 4, 4] and set(df["height"]) == {48} and set(df["width"]) == {64}
    assert df["metric"].tolist() == [True, False, True]
    assert df["cx"].tolist() == pytest.approx([31.5] * 3)
    assert df["path"].tolist() == ["arkit/41069025", "co3d/apple/1_2_3", "capture"]


def test_index_memory_is_flat_in_the_number_of_scenes(scene, tmp_path):
    from gaspprobe.scenes.index import write_index

    def peak(n: int) -> int:
        r = tmp_path / f"n{n}"
        for k in range(n):
            FORMATS.get("nerfstudio").write(scene, r / f"s{k:03d}")
        write_index(r)  # warm (imports, caches)
        tracemalloc.start()
        try:
            write_index(r)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    p2, p12 = peak(2), peak(12)
    one_scene = scene.rgb.numel() + scene.depth.numel() * 4
    assert p12 < p2 + one_scene, (p2, p12, one_scene)  # holding all scenes would add 10 scenes' worth


def test_formats_and_show_on_another_format(root, tmp_path, capsys):
    code, out, _ = _run(["scenes", "formats"], capsys)
    assert code == 0 and all(n in out for n in FORMATS.names())
    code, out, err = _run(["scenes", "show", root, "--scene", "41069025", "--frames", "0", "2",
                           "--out", tmp_path / "p.png"], capsys)
    assert code == 0, err
    assert (tmp_path / "p.png").is_file()
