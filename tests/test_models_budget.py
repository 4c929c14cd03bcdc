"""Token budget (processor pixel settings through ``load(..., pixels=)``), ``model inspect``'s
token counts and warning, and ``dtype="auto"`` on CPU for fp16 checkpoints."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from gaspprobe.errors import ConfigError
from gaspprobe.models.loading import load
from gaspprobe.models.testing import tiny_model_dir


def test_max_pixels_sets_the_grid_and_is_recorded():
    ad = load(tiny_model_dir("qwen2_5_vl"), dtype="float32", pixels={"max_pixels": 112 * 112})
    # 968x1296 under 112*112 px: smart_resize -> 84x112 (multiples of 28) -> 3x4 tokens, by hand:
    # beta = sqrt(968*1296/12544) = 10.0; floor(968/10.0/28)*28 = 84, floor(1296/10.0/28)*28 = 112
    assert ad.token_grid((968, 1296), 1).shape == (1, 3, 4)
    assert ad.image_tokens((968, 1296), 8) == 8 * 12
    assert ad.pixels["size"] == {"shortest_edge": 3136, "longest_edge": 112 * 112}


def test_image_splitting_off_gives_one_view():
    ad = load(tiny_model_dir("idefics3"), dtype="float32", pixels={"image_splitting": False})
    assert ad.pixels["image_splitting"] is False
    assert ad.token_grid((968, 1296), 1).shape == (1, 4, 4)  # one 112 view -> 4x4 tokens
    assert ad.image_tokens((968, 1296), 2) == 2 * 16


def test_internvl_image_splitting_is_what_the_processor_call_does():
    """InternVLProcessor's call default crop_to_patches=True outranks the image processor's
    attribute (preprocessor_config.json says false for the real checkpoint, and the tiny model's
    image processor too): the default is recorded as True and tiles; image_splitting=false really
    turns tiling off."""
    d = tiny_model_dir("internvl")
    on = load(d, dtype="float32")
    assert on.processor.image_processor.crop_to_patches is False  # as saved
    assert on.pixels["image_splitting"] is True                    # as the call does
    # 968x1296: the canvas closest in aspect within 12 tiles is 4 x 3 tiles of 448, + a thumbnail
    assert on.image_tokens((968, 1296), 1) == (12 + 1) * 256
    off = load(d, dtype="float32", pixels={"image_splitting": False})
    assert off.pixels["image_splitting"] is False
    assert off.token_grid((968, 1296), 1).shape == (1, 16, 16)  # the frame squashed to 448: 16 x 16
    assert off.image_tokens((968, 1296), 2) == 2 * 256


def test_gemma3_pan_and_scan_is_refused_in_one_line():
    ad = load(tiny_model_dir("gemma3"), dtype="float32", pixels={"image_splitting": True})
    from gaspprobe.errors import ModelError

    with pytest.raises(ModelError, match="pan-and-scan \\(image_splitting\\) is on"):
        ad.token_grid((480, 1296), 1)


@pytest.mark.parametrize("pixels,match", [
    ({"max_pixels": 783}, r"pixels\.max_pixels: 783 px is below one token \(28x28 = 784 px\)"),
    ({"min_pixels": 10**9}, r"pixels\.min_pixels: min_pixels 1000000000 > max_pixels"),
    ({"max_pixel": 5}, r"pixels\.max_pixel: unknown pixel setting"),
    ({"size": {"longest_edge": 0}}, r"pixels\.size: must be a table of positive integers"),
    ({"image_splitting": True}, r"pixels\.image_splitting: .* does not split images"),
])
def test_bad_budgets_are_one_line_config_errors(pixels, match):
    with pytest.raises(ConfigError, match=match) as e:
        load(tiny_model_dir("qwen2_5_vl"), dtype="float32", pixels=pixels)
    assert "\n" not in str(e.value)


def _main(argv, capsys):
    from gaspprobe.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, " ".join(out.out.split()), " ".join(out.err.split())


def test_inspect_prints_tokens_and_warns_above_the_budget(capsys):
    d = str(tiny_model_dir("qwen2_5_vl"))
    code, out, err = _main(["model", "inspect", d, "--frame-size", "968", "1296", "--frames", "8",
                            "--max-tokens", "300"], capsys)
    assert code == 0, err
    assert "54 per frame, 432 per clip of 8 frame(s)" in out  # 968x1296 -> 168x252 -> 6x9 tokens
    assert "above --max-tokens 300" in err
    code, out, err = _main(["model", "inspect", d, "--max-pixels", "100"], capsys)
    assert code == 2 and "pixels.max_pixels: 100 px is below one token" in err


def test_auto_dtype_is_bf16_on_cpu_for_fp16_checkpoints(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir("llava"), d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["dtype"] = "float16"
    (d / "config.json").write_text(json.dumps(cfg))
    assert load(d).dtype == torch.bfloat16
    assert load(d, dtype="float16").dtype == torch.float16  # asked for explicitly: kept
    assert load(tiny_model_dir("llava")).dtype == torch.float32  # a float32 checkpoint stays float32


def test_a_processor_that_cannot_build_image_tokens_fails_at_load(tmp_path):
    """A checkpoint folder without its chat template: one line at load naming the missing file."""
    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir("llava"), d)
    for name in ("chat_template.jinja", "chat_template.json"):
        (d / name).unlink(missing_ok=True)
    cfg = json.loads((d / "processor_config.json").read_text())
    cfg.pop("chat_template", None)
    (d / "processor_config.json").write_text(json.dumps(cfg))
    from gaspprobe.errors import ModelError

    with pytest.raises(ModelError) as e:
        load(d)
    msg = str(e.value)
    assert "chat_template" in msg and "cannot build LLaVA-1.5 image tokens" in msg and "\n" not in msg
