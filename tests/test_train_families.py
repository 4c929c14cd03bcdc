"""Every registered model family trains with the defaults: generated from the model registry.

The training facts (where the language model sits, projector / vision parameter names, the LoRA
pattern) come from each family's FamilySpec; these tests check them against the live module tree
of the tiny model (independent of the spec's strings) and train three steps, export, reload with
plain transformers and generate. Idefics3 (language model at ``model.text_model``) is also trained
through the CLI exactly as a user would (`gaspprobe model tiny --arch idefics3 DIR`, then `gaspprobe train`).
"""

from __future__ import annotations

import json

import pytest
import torch

from gaspprobe.models.registry import supported

pytestmark = pytest.mark.slow

# 112x112 frames, 4 frames per scene, clips of 2 frames: three steps take about a second per family.
FAST = dict(steps=3, batch_size=1, frames_per_clip=2, clip_window=2, clips_per_scene=2, checkpoint_every=3,
            eval_every=0, val_fraction=0.34, warmup_steps=1, lora_rank=4, lora_alpha=8.0)
FAMILIES = supported()


@pytest.fixture(scope="module")
def scenes():
    from gaspprobe.scenes import generate_scene

    return [generate_scene(300 + s, frames=4, size=112) for s in range(3)]


def _lm_module(adapter):
    """The language model found from the module tree, not from the spec: the parent of the
    decoder layers (the ModuleList the adapter hooks)."""
    layers = adapter.decoder_layers()
    for name, mod in adapter.model.named_modules():
        if any(child is layers for child in mod.children()):
            return name, mod
    raise AssertionError("decoder layers have no parent module")


@pytest.mark.parametrize("arch", FAMILIES)
def test_spec_training_facts_match_the_module_tree(arch):
    from gaspprobe.models.testing import tiny_adapter
    from gaspprobe.training.config import TrainConfig
    from gaspprobe.training.surgery import setup_model

    ad = tiny_adapter(arch, fresh=True)
    name, lm = _lm_module(ad)
    assert ad.spec.language_model_path == name, (arch, name)
    lm_ids = {id(p) for p in lm.parameters()}
    # LoRA with the family default: every adapted module is a linear of the language model
    run, counts, targets = setup_model(ad, TrainConfig(lora_rank=2), "projector")
    assert targets == ad.spec.lora_targets
    lora_mods = [n for n, m in run.named_modules() if hasattr(m, "lora_A") and len(getattr(m, "lora_A"))]
    assert lora_mods and all(f".{ad.spec.language_model_name}." in n for n in lora_mods), lora_mods[:3]
    # ... and one per targeted linear of every decoder layer
    per_layer = {n.rsplit(".", 1)[-1] for n in lora_mods}
    assert per_layer == set(ad.spec.lora_modules) & {n.rsplit(".", 1)[-1] for n, _ in lm.named_modules()}
    assert len(lora_mods) == len(per_layer) * ad.num_layers
    # the projector trains, nothing else outside LoRA
    plain = [n for n, p in run.named_parameters() if p.requires_grad and "lora_" not in n]
    assert plain and all(any(k in n for k in ad.spec.projector_keys) for n in plain)
    assert counts["vision"] == sum(p.numel() for n, p in run.named_parameters() if n in plain)
    # full fine-tuning: exactly the language model's parameters (input embeddings excluded)
    ad = tiny_adapter(arch, fresh=True)
    run, counts, targets = setup_model(ad, TrainConfig(full=True), "none")
    _, lm = _lm_module(ad)
    lm_ids = {id(p) for p in lm.parameters()}
    got = {id(p) for p in run.parameters() if p.requires_grad}
    want = {id(p) for n, p in ad.model.named_parameters() if id(p) in lm_ids and "embed_tokens" not in n}
    assert targets is None and got == want and counts["llm"] == sum(p.numel() for p in lm.parameters()
                                                                   if id(p) in want)


@pytest.mark.parametrize("arch", FAMILIES)
def test_family_trains_three_steps_exports_and_reloads(arch, scenes, tmp_path):
    import transformers

    from gaspprobe.models import load
    from gaspprobe.models.testing import tiny_model_dir
    from gaspprobe.training.trainer import train

    base = tiny_model_dir(arch)
    res = train(str(base), scenes, tmp_path / "run", progress=False, **FAST)
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["status"] == "complete" and res.steps == 3 and len(res.log) == 3
    assert m["plan"]["family"] == arch and m["config"]["lora_targets"] is None
    spec = load(str(base)).spec
    assert m["plan"]["lora_targets"] == spec.lora_targets          # recorded resolved
    assert res.log.loss.notna().all() and (res.log.loss > 0).all()
    # the export is a plain transformers checkpoint (LoRA merged) and a gaspprobe model of the same family
    cfgj = json.loads((res.model_dir / "config.json").read_text())
    hf = getattr(transformers, cfgj["architectures"][0]).from_pretrained(str(res.model_dir))
    assert not any("lora" in n for n, _ in hf.named_parameters())
    ad = load(str(res.model_dir))
    assert ad.spec.model_type == arch
    out = ad.generate([(scenes[0].rgb[:1], "Describe.")], max_new_tokens=2)
    assert len(out) == 1 and isinstance(out[0], str)


def test_idefics3_trains_with_defaults_through_the_cli(tmp_path, scenes):
    """`gaspprobe model tiny --arch idefics3 DIR`, then `gaspprobe train` with LoRA and with --full."""
    from typer.testing import CliRunner

    from gaspprobe.cli import app
    from gaspprobe.scenes import save_scene

    sdir = tmp_path / "scenes"
    for s in scenes:
        save_scene(s, sdir / s.name)
    r = CliRunner().invoke(app, ["model", "tiny", "--arch", "idefics3", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    cfg = tmp_path / "c.toml"
    cfg.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in FAST.items()) + "\n")
    before = {k: v.clone() for k, v in _weights(tmp_path / "m").items()}
    for flag in ("--lora", "--full"):
        out = tmp_path / flag[2:]
        r = CliRunner().invoke(app, ["train", "--model", str(tmp_path / "m"), "--scenes", str(sdir), "--out",
                                     str(out), "--config", str(cfg), flag, "--no-progress"])
        assert r.exit_code == 0, r.output
        after = _weights(out / "model")
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        # what moved: the language model (text_model) and the projector (connector), never the tower
        assert any(".text_model." in k or k.startswith("model.text_model") for k in changed), flag
        assert any("connector" in k for k in changed), flag
        assert not any("vision_model" in k for k in changed), flag
        assert not any("embed_tokens" in k for k in changed), flag


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_export_keeps_the_video_processor_config(tmp_path, scenes):
    """A model saved by `train` keeps its video input settings even when the processor was loaded
    image-only (its video processor needs torchvision): the base's file is carried over as is."""
    import shutil

    from gaspprobe.models import load
    from gaspprobe.models.testing import tiny_model_dir
    from gaspprobe.training.trainer import train

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir("llava_next_video"), base)
    # keys of llava-hf/LLaVA-NeXT-Video-7B-hf's video_preprocessor_config.json
    text = json.dumps({"crop_size": {"height": 336, "width": 336}, "do_center_crop": True, "do_resize": True,
                       "processor_class": "LlavaNextVideoProcessor", "size": {"shortest_edge": 336},
                       "video_processor_type": "LlavaNextVideoVideoProcessor"}, indent=2)
    (base / "video_preprocessor_config.json").write_text(text)
    res = train(str(base), scenes, tmp_path / "run", progress=False, **{**FAST, "steps": 1})
    assert (res.model_dir / "video_preprocessor_config.json").read_text() == text
    assert load(str(res.model_dir)).spec.model_type == "llava_next_video"
