"""`gaspprobe model list|tiny|inspect` end to end (through the console-script entry point)."""

from __future__ import annotations

import pytest

from gaspprobe.cli import main
from gaspprobe.models import load

pytestmark = pytest.mark.slow


def run(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_names_every_family(capsys):
    code, out, _ = run(["model", "list"], capsys)
    assert code == 0
    for name in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava", "llava_onevision"):
        assert name in out


def test_tiny_then_inspect(tmp_path, capsys):
    d = tmp_path / "tiny-llava"
    code, out, _ = run(["model", "tiny", "--arch", "llava", str(d), "--seed", "2"], capsys)
    assert code == 0 and "LLaVA-1.5" in out
    assert (d / "config.json").is_file() and (d / "gaspprobe_model.json").is_file()
    assert load(d).num_layers == 4
    code, out, _ = run(["model", "inspect", str(d), "--frame-size", "300", "500", "--frames", "2"], capsys)
    assert code == 0
    assert "8 x 8 = 64 tokens per frame" in out  # shortest edge 112, centre crop 112 -> 8x8
    assert "300 x 500" in out


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    code, _, err = run(["model", "tiny", "--arch", "qwen25", str(tmp_path / "x")], capsys)
    assert code == 2 and "did you mean 'qwen2_5_vl'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["model", "inspect", str(tmp_path / "missing")], capsys)
    assert code == 2 and "no such model folder" in err and len(err.strip().splitlines()) == 1
