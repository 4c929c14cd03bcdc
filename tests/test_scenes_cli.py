"""End-to-end: ``gaspprobe scenes make|show|check`` on tiny scenes, through the real entry point."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gaspprobe.cli import main


def _run(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "scenes"
    with pytest.raises(SystemExit) as e:
        main(["scenes", "make", str(out), "--n-scenes", "2", "--frames", "3", "--size", "64", "--seed", "1"])
    assert e.value.code in (0, None)
    return out


def test_make_writes_scenes(made):
    assert sorted(p.name for p in made.iterdir()) == ["manifest.json", "scene0000_00", "scene0001_00"]
    assert len(list((made / "scene0000_00" / "color").iterdir())) == 3


def test_show_writes_png(made, tmp_path, capsys):
    out = tmp_path / "pair.png"
    code, stdout, _ = _run(["scenes", "show", made, "--scene", "scene0001_00", "--frames", "0", "2", "--out", out], capsys)
    assert code == 0 and "scene0001_00" in stdout
    im = Image.open(out)
    assert im.format == "PNG" and im.size[0] > 300
    assert np.asarray(im.convert("RGB")).std() > 10  # not blank
    code, _, _ = _run(["scenes", "show", made, "--out", tmp_path / "d.png"], capsys)  # defaults
    assert code == 0 and (tmp_path / "d.png").exists()


def test_show_bad_scene_and_frames(made, tmp_path, capsys):
    code, _, err = _run(["scenes", "show", made, "--scene", "nope", "--out", tmp_path / "x.png"], capsys)
    assert code == 2 and "nope" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(["scenes", "show", made, "--frames", "0", "9", "--out", tmp_path / "x.png"], capsys)
    assert code == 2 and "--frames" in err and not (tmp_path / "x.png").exists()


def test_check_ok_and_broken(made, tmp_path, capsys):
    code, out, _ = _run(["scenes", "check", made], capsys)
    assert code == 0 and "2 scene(s) ok" in out
    bad = tmp_path / "bad"
    shutil.copytree(made, bad)
    (bad / "scene0001_00" / "pose" / "1.txt").write_text("1 2 3\n")
    code, out, err = _run(["scenes", "check", bad], capsys)
    assert code == 2
    assert "1.txt" in err and "4x4" in err
    assert "ok" in out and "scene0000_00" in out


def test_missing_folder_is_one_line_exit_2(tmp_path, capsys):
    for cmd in (["scenes", "check", tmp_path / "nope"], ["scenes", "show", tmp_path / "nope", "--out", tmp_path / "a.png"]):
        code, _, err = _run(cmd, capsys)
        assert code == 2 and "nope" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(["scenes", "make", tmp_path / "m", "--objects", "5,2"], capsys)
    assert code == 2 and "--objects" in err
