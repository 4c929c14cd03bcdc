"""Training data at scale: several scene sources with mixing weights, DataLoader workers.

Quotas are checked against hand-computed counts; worker-built batches against in-process ones and
a whole run (killed and rerun) against an uninterrupted in-process run, bitwise.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from gaspprobe.errors import ConfigError, DataError

FAST = dict(steps=4, batch_size=1, frames_per_clip=3, clip_window=2, clips_per_scene=2, checkpoint_every=2,
            eval_every=0, val_fraction=0.0, warmup_steps=1, lr=5e-3, lora_rank=4, lora_alpha=8.0)


def test_mix_quotas_hand_computed():
    from gaspprobe.training.data import mix_quotas

    assert mix_quotas(16, [3, 1]) == [12, 4]
    assert mix_quotas(10, [1, 1, 1]) == [4, 3, 3]           # remainder to the earliest source
    assert mix_quotas(7, [0, 2]) == [0, 7]
    assert mix_quotas(5, [1, 1e-9]) == [5, 0]
    with pytest.raises(ValueError):
        mix_quotas(5, [0, 0])


def test_clip_plan_draws_each_source_in_its_share():
    from gaspprobe.training.data import ClipPlan

    # source 0: scenes 0, 1, 2; source 1: scene 3. Unweighted: each scene 4 clips per epoch.
    counts, src = [10, 10, 10, 12], [0, 0, 0, 1]
    plain = ClipPlan(counts, 3, 2, 4, seed=5)
    assert Counter(plain.clip(p).scene for p in range(16)) == {0: 4, 1: 4, 2: 4, 3: 4}
    # weights 1:3 over an epoch of 16 clips -> 4 clips from source 0, 12 from scene 3, every epoch
    plan = ClipPlan(counts, 3, 2, 4, seed=5, sources=src, weights=[1, 3])
    for e in range(3):
        c = Counter(src[plan.clip(p).scene] for p in range(16 * e, 16 * (e + 1)))
        assert c == {0: 4, 1: 12}, (e, c)
    for p in range(48):
        cl = plan.clip(p)
        f = cl.frames
        assert len(f) == 3 and list(f) == sorted(set(f)) and max(f) - min(f) <= 4 and max(f) < counts[cl.scene]
    # a pure function of (seed, position): a new plan gives the same clips in any order
    again = ClipPlan(counts, 3, 2, 4, seed=5, sources=src, weights=[1, 3])
    assert [again.clip(p) for p in reversed(range(40))] == [plan.clip(p) for p in reversed(range(40))]
    with pytest.raises(DataError, match="source 1"):
        ClipPlan(counts[:3], 3, 2, 4, seed=5, sources=[0, 0, 0], weights=[1, 1])


def test_worker_batches_equal_in_process_batches():
    from gaspprobe.scenes import generate_scene
    from gaspprobe.training.data import ClipBatches, ClipPlan, MatchCache, batch_stream, regular_boxes

    scenes = [generate_scene(40 + s, frames=5, size=64) for s in range(2)]
    plan = ClipPlan([5, 5], 3, 2, 3, seed=1)
    batches = ClipBatches(plan, MatchCache(scenes, regular_boxes((0, 0, 64, 64), 4, 4), (4, 4)), 2)
    ref = list(batch_stream(batches, 3, 9, 0))
    got = list(batch_stream(batches, 3, 9, 2, seed=0))
    assert len(ref) == len(got) == 6
    for (fa, ma), (fb, mb) in zip(ref, got):
        assert torch.equal(fa, fb)
        for k in ("pair_b", "pair_i", "pair_j", "pair", "src", "tgt", "depth", "token_depth"):
            assert torch.equal(getattr(ma["token"], k), getattr(mb["token"], k)), k
    rng = torch.get_rng_state()
    list(batch_stream(batches, 0, 2, 1, seed=0))
    assert torch.equal(rng, torch.get_rng_state())               # the global RNG is never drawn


def test_gt_cache_is_bounded_and_eviction_changes_nothing():
    """Memory flat in the number of scenes: at most max_scenes scenes' GT are kept, and GT
    recomputed after eviction equals the first computation exactly."""
    from gaspprobe.scenes import generate_scene
    from gaspprobe.training.data import Clip, MatchCache, regular_boxes

    scenes = [generate_scene(70 + s, frames=4, size=64) for s in range(3)]
    boxes = regular_boxes((0, 0, 64, 64), 4, 4)
    full = MatchCache(scenes, boxes, (4, 4), max_gap=2)
    small = MatchCache(scenes, boxes, (4, 4), max_gap=2, max_scenes=1)
    clips = [[Clip(s, (0, 1, 3))] for s in (0, 1, 2, 0, 2, 1)]
    for c in clips:
        a, b = full.matches(c)["token"], small.matches(c)["token"]
        for k in ("pair", "src", "tgt", "depth", "token_depth"):
            assert torch.equal(getattr(a, k), getattr(b, k)), k
        assert len(small._scenes) == 1 and list(small._scenes) == [c[0].scene]
    assert len(full._scenes) == 3


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    from gaspprobe.scenes import generate_scene, save_scene

    root = tmp_path_factory.mktemp("sources")
    for name, seeds in (("synth_a", (11, 12)), ("synth_b", (21,))):
        for sd in seeds:
            sc = generate_scene(sd, frames=5, size=112)
            save_scene(sc, root / name / sc.name)
    return root


@pytest.mark.slow
def test_train_mixes_sources_and_workers_resume_exactly(tmp_path, two_sources):
    from safetensors.torch import load_file

    from gaspprobe.models.testing import tiny_model_dir
    from gaspprobe.training.trainer import train

    model = str(tiny_model_dir("qwen2_5_vl"))
    scenes = [two_sources / "synth_a", two_sources / "synth_b"]
    kw = {**FAST, "source_weights": {"synth_b": 3.0}}
    ref = train(model, scenes, tmp_path / "ref", progress=False, **kw)
    m = json.loads((tmp_path / "ref" / "manifest.json").read_text())
    assert m["scenes"] == [str(p) for p in scenes]
    assert [(s["name"], s["n_train"], s["weight"]) for s in m["plan"]["sources"]] == \
        [("synth_a", 2, 1.0), ("synth_b", 1, 3.0)]

    class Killed(Exception):
        pass

    def kill(step, rec):
        if step == 3:
            raise Killed

    wk = {**kw, "num_workers": 2}
    with pytest.raises(Killed):
        train(model, scenes, tmp_path / "w", progress=False, on_step=kill, **wk)
    res = train(model, scenes, tmp_path / "w", progress=False, **wk)      # resumes from step 2
    assert res.steps == 4 and not res.skipped
    assert res.log.loss.tolist() == ref.log.loss.tolist()
    for f in ("heads.safetensors", "model/model.safetensors"):
        a, b = load_file(str(tmp_path / "ref" / f)), load_file(str(tmp_path / "w" / f))
        assert all(torch.equal(a[k], b[k]) for k in a), f

    with pytest.raises(ConfigError, match="source_weights: unknown scene source 'synth_c'"):
        train(model, scenes, tmp_path / "x", progress=False, **{**FAST, "source_weights": {"synth_c": 1.0}})
    with pytest.raises(DataError, match="two scene sources named 'synth_a'"):
        train(model, [scenes[0], scenes[0]], tmp_path / "y", progress=False, **FAST)
    with pytest.raises(ConfigError, match="num_workers"):
        train(model, scenes, tmp_path / "z", progress=False, **{**FAST, "num_workers": -1})


@pytest.mark.slow
def test_lazy_scenes_train_the_same_run(tmp_path, two_sources):
    """Scenes read on first use (memory flat in the number of scenes) give bitwise the same run."""
    from gaspprobe.models.testing import tiny_model_dir
    from gaspprobe.training.trainer import train

    model = str(tiny_model_dir("qwen2_5_vl"))
    kw = {**FAST, "steps": 2, "val_fraction": 0.5}
    a = train(model, two_sources / "synth_a", tmp_path / "a", progress=False, **kw)
    b = train(model, two_sources / "synth_a", tmp_path / "b", progress=False, lazy_scenes=True, **kw)
    assert a.log.loss.tolist() == b.log.loss.tolist()
    assert a.summary["val_accuracy_r0"] == b.summary["val_accuracy_r0"] and a.summary["val_scenes"]
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["plan"]["metric_depth"] is True


@pytest.mark.slow
def test_cli_several_sources_and_weights(tmp_path, two_sources, capsys):
    from typer.testing import CliRunner

    from gaspprobe.cli import app
    from gaspprobe.models.testing import tiny_model_dir

    cfg = tmp_path / "c.toml"
    cfg.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in {**FAST, "steps": 1}.items()) + "\n")
    base = ["train", "--model", str(tiny_model_dir("qwen2_5_vl")), "--scenes", str(two_sources / "synth_a"),
            "--scenes", str(two_sources / "synth_b"), "--config", str(cfg), "--no-progress"]
    r = CliRunner().invoke(app, base + ["--out", str(tmp_path / "run"), "--source-weight", "synth_b=3",
                                        "--num-workers", "1"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["config"]["source_weights"] == {"synth_b": 3.0} and m["config"]["num_workers"] == 1
    assert [s["weight"] for s in m["plan"]["sources"]] == [1.0, 3.0]
    from gaspprobe.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:                # the console script: one line, exit 2
        main(base + ["--out", str(tmp_path / "bad"), "--source-weight", "synth_b"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "--source-weight: expected NAME=NUMBER" in err and "\n" not in err
