"""Registry-generated family tests: every entry of ``gaspprobe.models.registry.ADAPTERS`` builds
tiny, reports its grid, probes, trains three steps (LoRA and full, with the family's default
training facts), exports, and the export reloads with plain transformers and generates.

A new family gets these by being registered (one module plus one registry line); nothing here
names a family.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gaspprobe.models.registry import supported

pytestmark = pytest.mark.slow

TRAIN = dict(steps=3, batch_size=1, frames_per_clip=2, clip_window=2, clips_per_scene=2, checkpoint_every=3,
             eval_every=0, val_fraction=0.5, warmup_steps=1, lr=5e-3, lora_rank=4, lora_alpha=8.0, seed=0)


@pytest.fixture(scope="module")
def scenes():
    from gaspprobe.scenes import generate_scene

    return [generate_scene(300 + s, frames=4, size=112) for s in range(2)]


@pytest.mark.parametrize("arch", supported())
def test_builds_tiny_and_reports_its_grid(arch):
    from gaspprobe.models.testing import tiny_adapter

    ad = tiny_adapter(arch)
    assert ad.spec.model_type == arch == ad.model.config.model_type
    g = ad.token_grid((112, 112), 2)
    F, R, C = g.shape
    assert F == 2 and R > 0 and C > 0 and g.seq_index.shape == (F, R, C)
    assert (g.boxes[..., 2] > g.boxes[..., 0]).all() and (g.boxes[..., 3] > g.boxes[..., 1]).all()
    # every spatial token is an image token of the prompt, each once
    ids = ad.prepare([(np.zeros((2, 112, 112, 3), np.uint8), "Describe the scene.")])["input_ids"][0]
    s = g.seq_index.reshape(-1)
    assert s.unique().numel() == s.numel() and (ids[s] == ad.image_token_id).all()


@pytest.mark.parametrize("arch", supported())
def test_probes_with_the_quick_recipe(arch, scenes):
    import gaspprobe
    from gaspprobe.models.testing import tiny_adapter

    res = gaspprobe.probe(tiny_adapter(arch), scenes[:1], "quick", frames_per_clip=4, gaps=[1, 2])
    t = res.table
    assert len(t) > 0 and set(t["layer"].dropna()) == set(tiny_adapter(arch).layer_names())
    assert (t["n"] > 0).any() and np.isfinite(t.loc[t["n"] > 0, "value"].to_numpy(dtype=float)).all()


@pytest.mark.parametrize("full", [False, True], ids=["lora", "full"])
@pytest.mark.parametrize("arch", supported())
def test_trains_exports_reloads_and_generates(arch, full, scenes, tmp_path):
    import gaspprobe
    from gaspprobe.models.testing import tiny_model_dir

    src = tiny_model_dir(arch)
    res = gaspprobe.train(str(src), scenes, tmp_path / "run", progress=False, full=full, **TRAIN)
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()] \
        if (tmp_path / "run" / "train_log.jsonl").exists() else None
    assert log is None or len(log) == 3
    exported = tmp_path / "run" / "model"
    assert (exported / "config.json").is_file()
    # the trained weights differ from the base (three steps moved the language model)
    from safetensors.torch import load_file

    def weights(d):
        out = {}
        for f in sorted(d.glob("*.safetensors")):
            out.update(load_file(f))
        return out

    base, new = weights(src), weights(exported)
    changed = [k for k in base if k in new and base[k].shape == new[k].shape and not torch.equal(base[k], new[k])]
    assert changed, "training changed no weight"
    assert res is not None

    # reload with plain transformers and generate
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(exported, dtype=torch.float32).eval()
    processor = _plain_processor(exported)
    frames = [np.random.RandomState(0).randint(0, 256, (112, 112, 3), np.uint8)]
    from PIL import Image

    content = [{"type": "image"}, {"type": "text", "text": "Describe the scene."}]
    text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False) if processor.chat_template else "<image>Describe the scene."
    inputs = processor(text=[text], images=[[Image.fromarray(f) for f in frames]], return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3 or out.shape[1] > inputs["input_ids"].shape[1]


def _plain_processor(folder):
    """``AutoProcessor``; where the family's full processor needs torchvision (its video processor)
    and torchvision is missing, the processor class the folder names (a transformers
    ``ProcessorMixin`` subclass without the video processor) through the same ``from_pretrained``."""
    from transformers import AutoProcessor

    try:
        proc = AutoProcessor.from_pretrained(folder)
        if hasattr(proc, "image_processor"):
            return proc
    except Exception:
        pass
    from transformers.utils import is_torchvision_available

    assert not is_torchvision_available(), "AutoProcessor failed although torchvision is installed"
    from gaspprobe.models.loading import _import
    from gaspprobe.models.tiny import read_meta

    return _import(read_meta(folder)["processor_class"]).from_pretrained(folder)
