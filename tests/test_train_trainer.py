"""Integration tests of the GASP trainer on a tiny random Qwen2.5-VL and small rendered scenes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from gaspprobe.errors import ConfigError, DataError

pytestmark = pytest.mark.slow

# Small everything: 112x112 frames -> a 4x4 token grid on the tiny Qwen; 5 frames per scene.
FAST = dict(steps=4, batch_size=2, frames_per_clip=3, clip_window=3, clips_per_scene=4, checkpoint_every=2,
            eval_every=0, val_fraction=0.25, warmup_steps=1, lr=5e-3, lora_rank=4, lora_alpha=8.0)


@pytest.fixture(scope="module")
def tiny_dir():
    from gaspprobe.models.testing import tiny_model_dir

    return tiny_model_dir("qwen2_5_vl")


@pytest.fixture(scope="module")
def scenes():
    from gaspprobe.scenes import generate_scene

    return [generate_scene(100 + s, frames=5, size=112) for s in range(4)]


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory, scenes):
    from gaspprobe.scenes import save_scene

    d = tmp_path_factory.mktemp("train_scenes")
    for s in scenes:
        save_scene(s, d / s.name)
    return d


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dir, scenes):
    from gaspprobe.training.trainer import train

    out = tmp_path_factory.mktemp("run") / "run"
    res = train(str(tiny_dir), scenes, out, progress=False, label="gasp", **FAST)
    return out, res


def _frames(scene, n=3):
    return scene.rgb[:n][None]


def test_outputs_manifest_and_log(trained, tiny_dir):
    out, res = trained
    from gaspprobe import io

    m = io.read_manifest(out, kind="train")
    assert m["status"] == "complete" and m["model"] == str(tiny_dir)
    assert m["output_model"] == str(out / "model") and m["seed"] == 0
    assert m["summary"]["steps"] == 4 and m["plan"]["vision"] == "projector" and m["plan"]["tiny"] is True
    assert m["model_label"] == "gasp" and m["plan"]["family"] == "qwen2_5_vl"
    # logs are versioned tables (schema name + version in the parquet metadata, and in the manifest)
    from gaspprobe import tables

    assert m["tables"] == {"train_log": tables.TRAIN_LOG.version, "val_log": tables.VAL_LOG.version}
    for name, schema in (("train_log", tables.TRAIN_LOG), ("val_log", tables.VAL_LOG)):
        meta = tables.table_meta(out / f"{name}.parquet")
        assert meta["table"] == name and meta["version"] == schema.version
    val = res.val
    assert list(val.columns[:5]) == ["step", "layer", "gap", "acc_r0", "n"]
    summ = val[val.layer == "summary"].iloc[-1]
    assert summ.step == 4 and summ.peak_layer == m["summary"]["val_peak_layer"]
    assert summ.acc_r0 == pytest.approx(m["summary"]["val_peak_accuracy"])
    for f in ("heads.safetensors", "train_log.csv", "train_log.parquet", "loss_curve.png", "model/config.json",
              "model/gaspprobe_model.json", "model/tokenizer.json"):
        assert (out / f).is_file(), f
    log = res.log
    assert list(log.step) == [1, 2, 3, 4]
    for col in ("loss", "loss_corr", "loss_depth", "lr", "acc_llm.0", "raw_acc_llm.3", "llm.2/corr"):
        assert col in log.columns and log[col].notna().all(), col
    # warm-up 1 step then cosine over 3 steps: lr = lr * [1, cos schedule at 1/3, 2/3, 1]
    import math

    want = [5e-3 * f for f in (1.0, 0.5 * (1 + math.cos(math.pi / 3)), 0.5 * (1 + math.cos(2 * math.pi / 3)), 0.0)]
    assert log.lr.tolist() == pytest.approx(want)
    assert (log.loss - (log.loss_corr + 0.1 * log.loss_depth)).abs().max() < 1e-5


def test_exported_model_loads_like_base_and_matches_trained_weights(trained, tiny_dir, scenes):
    out, _ = trained
    from gaspprobe.models import load

    base = load(str(tiny_dir))
    gasp = load(str(out / "model"))
    assert type(gasp) is type(base) and gasp.num_layers == base.num_layers
    x = _frames(scenes[0])
    with torch.no_grad():
        fb = base.image_features(x)
        fg = gasp.image_features(x)
    assert set(fb) == set(fg)
    # vision side (projector) and every LLM layer moved
    for n in fb:
        assert not torch.allclose(fb[n], fg[n], atol=1e-6), n
    # only merged LoRA targets and the projector changed, nothing else (LoRA is on the LLM only)
    wb = load_file(str(tiny_dir / "model.safetensors"))
    wg = load_file(str(out / "model" / "model.safetensors"))
    assert set(wb) == set(wg)
    changed = {k for k in wb if not torch.equal(wb[k], wg[k])}
    assert changed, "training changed nothing"
    # (on disk the Qwen2.5-VL checkpoint layout: LLM under model.layers, vision under visual)
    lora_t = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    for k in changed:
        merged = k.startswith("model.layers.") and k.endswith(".weight") and any(t in k for t in lora_t)
        assert merged or k.startswith("visual.merger"), k
    assert any("visual.merger" in k for k in changed)
    assert not any("visual.blocks" in k or "embed_tokens" in k for k in changed)
    # plain transformers loads it too (no peft wrapper, no LoRA keys left)
    import transformers

    arch = json.loads((out / "model" / "config.json").read_text())["architectures"][0]
    m = getattr(transformers, arch).from_pretrained(str(out / "model"))
    assert not any("lora" in n for n, _ in m.named_parameters())


def test_rerun_same_config_is_noop_and_different_config_refused(trained, tiny_dir, scenes):
    from gaspprobe.training.trainer import train

    out, _ = trained
    before = (out / "heads.safetensors").stat().st_mtime_ns
    res = train(str(tiny_dir), scenes, out, progress=False, label="gasp", **FAST)
    assert res.skipped and (out / "heads.safetensors").stat().st_mtime_ns == before
    with pytest.raises(DataError, match=r"different config\.lr\b"):
        train(str(tiny_dir), scenes, out, progress=False, **{**FAST, "lr": 1e-3})
    with pytest.raises(DataError, match=r"different model"):       # before any model loads
        train(str(out / "nowhere"), scenes, out, progress=False, **FAST)


def test_force_replaces_a_run_with_another_config(tmp_path, tiny_dir, scenes):
    from gaspprobe.training.trainer import train

    kw = {**FAST, "steps": 1}
    train(str(tiny_dir), scenes, tmp_path / "r", progress=False, **kw)
    res = train(str(tiny_dir), scenes, tmp_path / "r", progress=False, force=True, **{**kw, "lr": 1e-3})
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert not res.skipped and m["status"] == "complete" and m["config"]["lr"] == 1e-3
    assert res.log.step.tolist() == [1]                 # a fresh run, not the old log continued


def test_time_limit_stops_after_a_checkpointed_step(tmp_path, tiny_dir, scenes):
    from gaspprobe.training.trainer import train

    res = train(str(tiny_dir), scenes, tmp_path / "t", progress=False, **{**FAST, "steps": 5, "time_limit_s": 1e-6})
    assert res.steps == 1 and res.summary["stopped_early"] is True and res.log.step.tolist() == [1]
    assert sorted(p.name for p in (tmp_path / "t" / "checkpoints").iterdir()) == ["step-000001"]
    assert (tmp_path / "t" / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_resume_after_kill_is_bitwise_identical(tmp_path, tiny_dir, scenes, grad_accum):
    from gaspprobe.training.trainer import train

    kw = {**FAST, "steps": 5, "grad_accum": grad_accum}
    train(str(tiny_dir), scenes, tmp_path / "a", progress=False, **kw)

    class Killed(Exception):
        pass

    def kill(step, rec):
        if step == 3:                       # after the step-2 checkpoint, mid-interval
            raise Killed

    with pytest.raises(Killed):
        train(str(tiny_dir), scenes, tmp_path / "b", progress=False, on_step=kill, **kw)
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["step-000002"]
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["status"] == "running"
    # the run kernel refuses another config on the unfinished run, naming the key
    with pytest.raises(DataError, match=r"different config\.lr"):
        train(str(tiny_dir), scenes, tmp_path / "b", progress=False, **{**kw, "lr": 1e-3})
    res = train(str(tiny_dir), scenes, tmp_path / "b", progress=False, **kw)   # same config: resumes
    assert res.steps == 5 and not res.skipped
    for f in ("heads.safetensors", "model/model.safetensors"):
        a, b = load_file(str(tmp_path / "a" / f)), load_file(str(tmp_path / "b" / f))
        assert set(a) == set(b)
        for k in a:
            assert torch.equal(a[k], b[k]), (f, k)
    import pandas as pd

    la = pd.read_csv(tmp_path / "a" / "train_log.csv")
    lb = pd.read_csv(tmp_path / "b" / "train_log.csv")
    assert la.step.tolist() == lb.step.tolist() == [1, 2, 3, 4, 5]
    assert la.loss.tolist() == lb.loss.tolist()


def test_lora_only_on_language_model_and_vision_choices(tiny_dir):
    from gaspprobe.models import load
    from gaspprobe.training.config import TrainConfig
    from gaspprobe.training.surgery import setup_model

    for vision, must, never in (("none", (), ("visual",)), ("projector", ("visual.merger",), ("visual.blocks",)),
                                ("tower", ("visual.blocks", "visual.merger"), ())):
        ad = load(str(tiny_dir))
        run, counts, targets = setup_model(ad, TrainConfig(lora_rank=4), vision)
        assert targets == ad.spec.lora_targets        # None in the config = the family's default
        names = [n for n, p in run.named_parameters() if p.requires_grad]
        lora = [n for n in names if "lora_" in n]
        # every LLM layer x 7 linears x (A, B), all inside model.language_model (none in the tower)
        assert len(lora) == ad.num_layers * 7 * 2 and all(".language_model." in n for n in lora)
        nonlora = [n for n in names if "lora_" not in n]
        for k in must:
            assert any(k in n for n in nonlora), (vision, k)
        for k in never:
            assert not any(k in n for n in nonlora), (vision, k)
        assert counts["lora"] == sum(p.numel() for n, p in run.named_parameters() if n in lora)
    ad = load(str(tiny_dir))
    run, counts, targets = setup_model(ad, TrainConfig(full=True), "none")
    names = [n for n, p in run.named_parameters() if p.requires_grad]
    lm = {id(p) for p in ad.model.model.language_model.parameters()}
    want = [n for n, p in ad.model.named_parameters() if id(p) in lm and "embed_tokens" not in n]
    assert targets is None and names == want and counts["llm"] > 0
    with pytest.raises(ConfigError, match="lora_targets"):
        setup_model(load(str(tiny_dir)), TrainConfig(lora_targets=r".*\.(qkv|proj)"), "none")


def test_svd_heads_start_as_layer_query_geometry(tiny_dir):
    from gaspprobe.models import load
    from gaspprobe.training.heads import HeadBank, query_weights

    ad = load(str(tiny_dir))
    layers = ["llm.0", "llm.2"]
    bank = HeadBank(layers, ad.hidden_size, 16)
    bank.init("svd", query_weights(ad, layers))
    x = torch.randn(5, ad.hidden_size)
    for n in layers:
        wq = ad.decoder_layers()[int(n[4:])].self_attn.q_proj.weight.detach()
        U = torch.linalg.svd(wq, full_matrices=False)[0][:, :16]
        # cosine geometry of the head = that of the query vectors projected on the top-16 directions
        h = torch.nn.functional.normalize(bank[n](x), dim=-1)
        ref = torch.nn.functional.normalize(x @ wq.T @ U, dim=-1)
        assert torch.allclose(h, ref, atol=1e-5)


def test_training_learns_on_one_scene(tmp_path, tiny_dir, scenes):
    """A learning signal, not a headline: on one scene the head match accuracy must rise."""
    from gaspprobe.training.trainer import train

    res = train(str(tiny_dir), scenes[:1], tmp_path / "r", progress=False,
                **{**FAST, "steps": 30, "checkpoint_every": 100, "val_fraction": 0.0, "lr": 1e-2,
                   "warmup_steps": 0, "schedule": "constant"})
    log = res.log
    first, last = log.loss.iloc[:5].mean(), log.loss.iloc[-5:].mean()
    assert last < 0.8 * first, (first, last)
    assert log["acc_llm.3"].iloc[-5:].mean() > log["acc_llm.3"].iloc[:5].mean() + 0.1


def test_bad_inputs_are_one_line_errors(tmp_path, tiny_dir, scenes):
    from gaspprobe.scenes import generate_scene
    from gaspprobe.training.trainer import train

    with pytest.raises(DataError, match="frame sizes"):
        train(str(tiny_dir), [scenes[0], generate_scene(7, frames=5, size=96)], tmp_path / "x", progress=False, **FAST)
    with pytest.raises(DataError, match="fewer than 2 frames"):
        train(str(tiny_dir), [sc.subset([0]) for sc in scenes], tmp_path / "y", progress=False, **FAST)
    with pytest.warns(UserWarning, match="clips of 5 frames"):    # scenes have 5 frames
        res = train(str(tiny_dir), scenes, tmp_path / "y2", progress=False,
                    **{**FAST, "frames_per_clip": 6, "steps": 1})
    assert res.steps == 1
    assert json.loads((tmp_path / "y2" / "manifest.json").read_text())["plan"]["frames_per_clip"] == 5
    with pytest.raises(ConfigError, match="lr_rate"):
        train(str(tiny_dir), scenes, tmp_path / "z", progress=False, lr_rate=1.0)
    with pytest.raises(ConfigError, match="layers"):
        train(str(tiny_dir), scenes, tmp_path / "w", progress=False, **{**FAST, "layers": "llm.9"})
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = 'many'\n")
    with pytest.raises(ConfigError, match="steps"):
        train(str(tiny_dir), scenes, tmp_path / "v", bad, progress=False)
    for e in (DataError, ConfigError):
        assert "\n" not in str(e("x"))


def test_cli_train_with_config_file(tmp_path, tiny_dir, scenes_dir):
    from typer.testing import CliRunner

    from gaspprobe.cli import app

    cfg = tmp_path / "cfg.toml"
    cfg.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in {**FAST, "steps": 2}.items()) + "\n")
    r = CliRunner().invoke(app, ["train", "--model", str(tiny_dir), "--scenes", str(scenes_dir), "--out",
                                 str(tmp_path / "run"), "--config", str(cfg), "--no-progress", "--steps", "3"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["status"] == "complete" and m["config"]["steps"] == 3 and m["scenes"] == str(scenes_dir)
    r = CliRunner().invoke(app, ["train", "--model", str(tiny_dir), "--scenes", str(scenes_dir), "--out",
                                 str(tmp_path / "run"), "--config", str(cfg), "--no-progress", "--steps", "3"])
    assert r.exit_code == 0 and "nothing to do" in r.output


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not installed")
def test_accelerate_launch_two_cpu_processes(tmp_path, tiny_dir, scenes_dir):
    out = tmp_path / "ddp"
    # On CPU, accelerate's simple launcher needs MPI for >1 process; its torchrun-based launcher
    # (--multi_gpu) with ACCELERATE_USE_CPU=1 runs 2 gloo processes, as documented in docs/training.md.
    cmd = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "gaspprobe.cli", "train", "--model", str(tiny_dir), "--scenes",
           str(scenes_dir), "--out", str(out), "--steps", "2", "--batch-size", "1", "--frames", "3",
           "--lora-rank", "4", "--no-progress", "--threads", "1"]
    cfg = tmp_path / "c.toml"
    cfg.write_text("clip_window = 3\nclips_per_scene = 4\ncheckpoint_every = 1\neval_every = 0\nwarmup_steps = 1\n")
    r = subprocess.run(cmd + ["--config", str(cfg)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["summary"]["processes"] == 2
    # each step consumed 2 clips (one per process)
    assert m["summary"]["clips"] == 4
    assert (out / "model" / "model.safetensors").is_file() and (out / "heads.safetensors").is_file()


def test_match_cache_equals_patch_matches_and_batches_clips(scenes):
    """The batched GT cache must give exactly scenes.patch_matches' matches, and MatchSets index them right."""
    from gaspprobe.scenes import patch_matches
    from gaspprobe.training.data import Clip, MatchCache, regular_boxes

    boxes = regular_boxes((0, 0, 112, 112), 4, 4)
    cache = MatchCache(scenes[:2], boxes, (4, 4), max_gap=2)
    for s, i, j in [(0, 0, 1), (0, 3, 1), (1, 4, 0), (1, 2, 4)]:   # (1, 4, 0) is beyond max_gap: still right
        pm = patch_matches(scenes[s], i, j, (boxes, boxes))
        src, tgt, dep = cache._pair(s, i, j, "token")
        assert torch.equal(pm.src, src) and torch.equal(pm.tgt, tgt) and torch.equal(pm.proj_depth, dep)
    clips = [Clip(0, (0, 1, 3)), Clip(1, (1, 2, 4))]
    m = cache.matches(clips)["token"]
    assert m.pair_b.tolist() == [0, 0, 0, 1, 1, 1] and m.pair_i.tolist() == [0, 0, 1, 0, 0, 1]
    assert m.pair_j.tolist() == [1, 2, 2, 1, 2, 2]
    # pair 5 = clip 1, clip frames (2, 4): its matches are patch_matches(scene 1, 2, 4)
    pm = patch_matches(scenes[1], 2, 4, (boxes, boxes))
    assert torch.equal(m.src[m.pair == 5], pm.src) and torch.equal(m.tgt[m.pair == 5], pm.tgt)
    assert m.token_depth.shape == (2, 3, 16) and (m.token_depth > 0).all()
    assert cache.frames(clips).shape == (2, 3, 112, 112, 3)


def test_lm_loss_coarse_grid_and_bf16_options(tmp_path, tiny_dir, scenes):
    """The optional parts run and land in the log: LM loss on captions, an extra GT grid, bf16 autocast."""
    from gaspprobe.training.trainer import train

    caps = tmp_path / "captions.txt"
    caps.write_text("a room with a red chair\nthe table is next to the sofa\n\n")
    res = train(str(tiny_dir), scenes, tmp_path / "lm", progress=False,
                **{**FAST, "steps": 2, "lambda_lm": 0.5, "caption_file": str(caps), "gt_grids": [2]})
    log = res.log
    assert (log.loss_lm > 0).all()
    # the LM term is in the total: loss = corr + 0.1 depth + 0.5 lm (corr/depth average both grids)
    assert (log.loss - (log.loss_corr + 0.1 * log.loss_depth + 0.5 * log.loss_lm)).abs().max() < 1e-4
    res = train(str(tiny_dir), scenes, tmp_path / "bf16", progress=False,
                **{**FAST, "steps": 2, "mixed_precision": "bf16"})
    assert res.log.loss.notna().all() and (res.log.loss > 0).all()
    with pytest.raises(ConfigError, match="caption_file"):
        train(str(tiny_dir), scenes, tmp_path / "nocap", progress=False,
              **{**FAST, "lambda_lm": 0.5, "caption_file": str(tmp_path / "missing.txt")})
