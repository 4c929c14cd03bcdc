"""Registry, loading errors, the tiny builder's round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gaspprobe.errors import ModelError
from gaspprobe.models import adapter_class, load, supported
from gaspprobe.models.testing import tiny_adapter, tiny_model_dir


def test_registry_lists_the_families_and_rejects_unknown_ones():
    names = supported()
    assert {"qwen2_vl", "qwen2_5_vl", "qwen3_vl"} <= set(names)
    for n in names:
        assert adapter_class(n).spec.model_type == n
    with pytest.raises(ModelError) as e:
        adapter_class("qwen25_vl")
    msg = str(e.value)
    assert "\n" not in msg and "did you mean 'qwen2_5_vl'" in msg and "qwen3_vl" in msg
    with pytest.raises(ModelError, match="text-only"):
        adapter_class("llama")


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(ModelError, match="no such model folder") as e:
        load(str(tmp_path / "nope" / "model"))
    assert "\n" not in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        load(tmp_path / "empty")
    with pytest.raises(ModelError, match="dtype must be one of"):
        load(tmp_path / "empty", dtype="fp8")
    # a text-only checkpoint folder
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                vocab_size=100).save_pretrained(tmp_path / "llama")
    with pytest.raises(ModelError, match="text-only") as e:
        load(tmp_path / "llama")
    assert "\n" not in str(e.value)
    # an unreachable hub id (offline here): one line naming it
    with pytest.raises(ModelError, match="nobody-here/no-such-vlm") as e:
        load("nobody-here/no-such-vlm")
    assert "\n" not in str(e.value)


def test_tiny_build_round_trip_is_deterministic():
    d = tiny_model_dir("qwen2_5_vl", seed=0)
    meta = json.loads((d / "gaspprobe_model.json").read_text())
    from gaspprobe.models.video import ensure_torchvision

    # laid out like the real checkpoint: with its video processor where torchvision imports
    assert meta["processor_class"] == ("transformers.models.qwen2_5_vl.processing_qwen2_5_vl:Qwen2_5_VLProcessor"
                                       if ensure_torchvision() else
                                       "gaspprobe.models.processors:Qwen2_5_VLImageOnlyProcessor")
    assert meta["arch"] == "qwen2_5_vl" and meta["seed"] == 0
    assert json.loads((d / "config.json").read_text())["model_type"] == "qwen2_5_vl"
    ad = tiny_adapter("qwen2_5_vl")
    rebuilt, _ = adapter_class("qwen2_5_vl").build_tiny_parts(seed=0)
    other, _ = adapter_class("qwen2_5_vl").build_tiny_parts(seed=1)
    sd, rsd, osd = ad.model.state_dict(), rebuilt.state_dict(), other.state_dict()
    assert sd.keys() == rsd.keys()
    assert all(torch.equal(sd[k], rsd[k]) for k in sd)  # same seed: bit-identical after save/load
    assert any(not torch.equal(sd[k], osd[k]) for k in sd)  # another seed: different weights
    assert ad.num_layers == 4 and ad.hidden_size == 128
    assert ad.layer_names() == ["vision", "llm.0", "llm.1", "llm.2", "llm.3"]
    assert ad.decoder_layers()[0].self_attn.q_proj.weight.shape == (128, 128)
    # the 448x448 frame -> 8x8 token grid that probing and training rely on
    assert ad.token_grid((448, 448), 4).shape == (4, 8, 8)


def test_loaded_model_gives_the_same_logits_as_the_built_one():
    ad = tiny_adapter("qwen2_5_vl")
    rebuilt, _ = adapter_class("qwen2_5_vl").build_tiny_parts(seed=0)
    fr = np.random.RandomState(0).randint(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    x = ad.prepare([(fr, "hi")])
    with torch.no_grad():
        torch.testing.assert_close(ad.model(**x).logits, rebuilt.eval()(**x).logits)


def test_load_without_our_metadata_goes_through_autoprocessor(tmp_path):
    """A folder without gaspprobe_model.json is loaded like a hub checkpoint: AutoProcessor first
    (LLaVA: works), else the family's image-only processor (Qwen: its video processor needs torchvision)."""
    import shutil

    for arch, expect in (("llava", "LlavaProcessor"), ("qwen2_5_vl", None)):
        d = tmp_path / arch
        shutil.copytree(tiny_model_dir(arch), d)
        (d / "gaspprobe_model.json").unlink()
        ad = load(d)
        name = type(ad.processor).__name__
        assert name == (expect or name) and hasattr(ad.processor, "image_processor")
        ref = tiny_adapter(arch)
        fr = np.random.RandomState(1).randint(0, 256, (2, 224, 224, 3), dtype=np.uint8)
        assert torch.equal(ad.prepare([(fr, "hi")])["input_ids"], ref.prepare([(fr, "hi")])["input_ids"])
        assert ad.token_grid((300, 500), 2).shape == ref.token_grid((300, 500), 2).shape


@pytest.mark.parametrize("arch,video", [("qwen2_5_vl", "<|vision_start|><|video_pad|><|vision_end|>"),
                                        ("qwen2_vl", "<|vision_start|><|video_pad|><|vision_end|>"),
                                        ("qwen3_vl", "<|vision_start|><|video_pad|><|vision_end|>"),
                                        ("llava_onevision", "<video>\n")])
def test_tiny_chat_templates_have_the_real_video_branch(arch, video):
    """The real checkpoints' templates render a video item; the tiny ones (saved and reloaded) too."""
    proc = tiny_adapter(arch).processor
    msg = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Where?"}]}]
    text = proc.apply_chat_template(msg, add_generation_prompt=True, tokenize=False)
    assert video + "Where?" in text
    img = proc.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}], tokenize=False)
    assert video not in img
