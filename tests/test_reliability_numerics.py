"""Reliability, part 4: numerics at the edges. No NaN/inf in losses or metrics; n=0 instead of a number.

Degenerate inputs, each built so that the expected answer is known without the code under test:

- **nothing visible in the other view**: frame 1 is frame 0's camera turned 180 degrees about its own
  y axis (``cam_to_world[1] = cam_to_world[0] @ diag(-1, 1, -1, 1)``), so every point in front of
  one camera is behind the other: exactly zero ground-truth matches in either direction;
- **all-invalid depth** (depth = 0 everywhere): zero matches, and no depth target;
- **a one-frame scene**: no frame pairs at all;
- **zero matches in a training batch**, and matches whose target frame has no valid depth.

Losses must be finite (exactly 0 with nothing to match) and backpropagate finite (zero) gradients;
the probe must report ``n = 0`` with no value (NaN in the table, ``null`` in JSON) rather than a
number, and pooling a degenerate scene with a normal one must give exactly the normal scene's
numbers (an empty scene adds nothing, it does not dilute).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# --------------------------------------------------------------------------- degenerate scenes
@pytest.fixture(scope="module")
def base_scene():
    from gaspprobe.scenes import generate_scene

    return generate_scene(seed=3, frames=3, size=64, name="good")


def flipped(scene, name="flip"):
    """Two frames from the same centre looking in exactly opposite directions: no overlap."""
    T = scene.cam_to_world[:2].clone()
    T[1] = T[0] @ torch.diag(torch.tensor([-1.0, 1.0, -1.0, 1.0]))
    return dataclasses.replace(scene, name=name, rgb=scene.rgb[:2], depth=scene.depth[:2], K=scene.K[:2],
                               cam_to_world=T, frame_ids=[0, 1],
                               instance=None if scene.instance is None else scene.instance[:2])


def no_depth(scene, name="nodepth"):
    return dataclasses.replace(scene, name=name, depth=torch.zeros_like(scene.depth))


def one_frame(scene, name="one"):
    return dataclasses.replace(scene, name=name, rgb=scene.rgb[:1], depth=scene.depth[:1], K=scene.K[:1],
                               cam_to_world=scene.cam_to_world[:1], frame_ids=[0],
                               instance=None if scene.instance is None else scene.instance[:1])


def test_flipped_scene_has_no_gt_matches(base_scene):
    """The construction really gives zero matches (checked by hand geometry, then by the library)."""
    from gaspprobe.scenes import patch_matches

    s = flipped(base_scene)
    R0, R1 = s.cam_to_world[0, :3, :3], s.cam_to_world[1, :3, :3]
    assert torch.allclose(R0[:, 2], -R1[:, 2])  # forward axes opposite
    assert torch.allclose(s.cam_to_world[0, :3, 3], s.cam_to_world[1, :3, 3])
    for i, j in ((0, 1), (1, 0)):
        assert patch_matches(s, i, j, (4, 4)).src.numel() == 0
    assert patch_matches(base_scene, 0, 1, (4, 4)).src.numel() > 0  # the unflipped pair does match


# --------------------------------------------------------------------------- probe
def _probe(scenes, out, model="oracle:xyz"):
    import gaspprobe
    import pandas as pd

    gaspprobe.probe(model, scenes, "quick", out=out, overwrite=True)
    table = pd.read_parquet(out / "probe.parquet")
    summary = json.loads((out / "summary.json").read_text())
    return table, summary


def _no_number_without_n(table):
    v = table["value"].astype(float).to_numpy()
    n = table["n"].to_numpy()
    assert not np.isinf(v).any(), "inf in the probe table"
    assert np.isnan(v[n == 0]).all(), table[(n == 0) & ~np.isnan(v)]
    assert np.isfinite(v[n > 0]).all(), table[(n > 0) & ~np.isfinite(v)]


def _walk_numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk_numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


@pytest.mark.parametrize("make", [flipped, no_depth, one_frame], ids=["no-overlap", "no-depth", "one-frame"])
def test_probe_degenerate_scene_reports_n0(make, base_scene, tmp_path):
    table, summary = _probe([make(base_scene)], tmp_path / "p")
    _no_number_without_n(table)
    acc = table[table["metric"].str.contains("acc")]
    assert len(acc) and (acc["n"] == 0).all() and acc["value"].isna().all()
    assert summary["n_matches"] == 0
    assert summary["peak_accuracy"] is None and summary["peak_layer"] is None
    assert summary["robustness"] is None
    assert all(v is None for r in summary["accuracy"].values() for v in r.values())
    assert all(math.isfinite(x) for x in _walk_numbers(summary))  # JSON holds null, never NaN


@pytest.mark.parametrize("make", [flipped, no_depth, one_frame], ids=["no-overlap", "no-depth", "one-frame"])
def test_degenerate_scene_does_not_dilute_pooled_numbers(make, base_scene, tmp_path):
    """Pooled over [good, degenerate] == good alone: the empty scene contributes n=0, not zeros."""
    good_t, good_s = _probe([base_scene], tmp_path / "g")
    both_t, both_s = _probe([base_scene, make(base_scene)], tmp_path / "b")
    _no_number_without_n(both_t)
    assert good_s["n_matches"] > 0 and both_s["n_matches"] == good_s["n_matches"]
    assert both_s["accuracy"] == good_s["accuracy"]
    key = ["layer", "gap", "metric"]
    def pooled(t):
        return t[t["scene"].isna() & t["metric"].str.contains("acc")].sort_values(key).reset_index(drop=True)
    a, b = pooled(good_t), pooled(both_t)
    assert a[key + ["n"]].equals(b[key + ["n"]])
    np.testing.assert_array_equal(a["value"].to_numpy(float), b["value"].to_numpy(float))


def test_depth_probe_fitted_on_no_valid_depth_reports_n0(base_scene, tmp_path):
    """The ridge depth probe is fitted on the first half of the scenes; if those have no valid depth
    there is nothing to fit: every depth row is n=0 / no value (not a fit on zero samples)."""
    table, summary = _probe([no_depth(base_scene), dataclasses.replace(base_scene, name="good2")], tmp_path / "p")
    _no_number_without_n(table)
    depth = table[table["metric"].str.startswith("depth")]
    assert len(depth) and (depth["n"] == 0).all()
    assert all(v["n"] == 0 and v["absrel"] is None for v in summary["depth_probe"].values())
    assert summary["n_matches"] > 0 and summary["peak_accuracy"] is not None  # matching is unaffected


@pytest.mark.slow
def test_probe_tiny_model_on_depthless_scene(base_scene, tmp_path):
    """Real hidden states and attention logits (tiny Qwen2.5-VL): same n=0 contract as the oracle."""
    import gaspprobe
    import pandas as pd

    from gaspprobe.models import build_tiny

    build_tiny("qwen2_5_vl", tmp_path / "m", seed=0)
    gaspprobe.probe(str(tmp_path / "m"), [no_depth(base_scene), flipped(base_scene, "flip2")], "quick",
                    out=tmp_path / "p", modes=["hidden", "attention"])
    table = pd.read_parquet(tmp_path / "p" / "probe.parquet")
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert table["metric"].str.startswith("attention").any()
    _no_number_without_n(table)
    assert summary["n_matches"] == 0 and summary["peak_accuracy"] is None


def test_probe_cli_prints_no_nan(base_scene, tmp_path, capsys):
    """The CLI table shows no 'nan' for a scene with nothing to match."""
    from gaspprobe.cli import main
    from gaspprobe.scenes import save_scene

    save_scene(flipped(base_scene, "scene0000_00"), tmp_path / "s" / "scene0000_00")
    with pytest.raises(SystemExit) as e:
        main(["probe", "-m", "oracle:xyz", "-s", str(tmp_path / "s"), "-o", str(tmp_path / "p"), "-r", "quick"])
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    import re

    assert not re.search(r"\bnan\b", out.lower()) and "Traceback" not in err
    assert "-" in out  # no value is shown as '-'



# --------------------------------------------------------------------------- losses
def _matchset(B=1, F=2, N=4, M=0, depth_valid=True, seed=0):
    from gaspprobe.training.losses import MatchSet

    g = torch.Generator().manual_seed(seed)
    P = 1
    token_depth = (torch.rand(B, F, N, generator=g) + 1.0) if depth_valid else torch.zeros(B, F, N)
    return MatchSet(pair_b=torch.zeros(P, dtype=torch.long), pair_i=torch.zeros(P, dtype=torch.long),
                    pair_j=torch.ones(P, dtype=torch.long), pair=torch.zeros(M, dtype=torch.long),
                    src=torch.arange(M, dtype=torch.long) % N, tgt=(torch.arange(M, dtype=torch.long) + 1) % N,
                    depth=torch.rand(M, generator=g) + 1.0, token_depth=token_depth, grid=(2, 2))


def _emb(B=1, F=2, N=4, e=8, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, F, N, e, generator=g) * scale
    x = torch.nn.functional.normalize(x, dim=-1).requires_grad_(True)
    return x


@pytest.mark.parametrize("M,depth_valid", [(0, True), (0, False), (3, False), (3, True)])
def test_losses_finite_with_grads(M, depth_valid):
    from gaspprobe.training.losses import depth_consistency, gasp_loss, info_nce

    emb = _emb()
    m = _matchset(M=M, depth_valid=depth_valid)
    c, cd = info_nce(emb, m)
    d, dd = depth_consistency(emb, m)
    assert torch.isfinite(c) and torch.isfinite(d)
    if M == 0:
        assert float(c) == 0.0 and cd["n"] == 0
    if M == 0 or not depth_valid:
        assert float(d) == 0.0 and dd["n"] == 0
    total, det = gasp_loss({"llm.0": emb, "llm.1": emb * 1.0}, {"token": m})
    assert torch.isfinite(total)
    total.backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all()
    if M == 0:
        assert float(total) == 0.0 and det["n_matches"] == 0 and bool((emb.grad == 0).all())
    for k, v in det.items():
        if not k.endswith("/acc"):  # in-batch accuracy of zero matches is "no value" (NaN -> null in logs)
            assert math.isfinite(v), (k, v)
        elif M == 0:
            assert math.isnan(v)


def test_info_nce_matches_hand_computation_with_tiny_temperature():
    """One match, 2 tokens, T = 1e-3 (logits ~1e3): equals the hand-computed stable value, finite."""
    from gaspprobe.training.losses import info_nce

    emb = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [1.0, 0.0]]]])  # [1, 2, 2, 2]
    m = _matchset(N=2, M=1)
    m.src, m.tgt = torch.tensor([0]), torch.tensor([1])
    loss, _ = info_nce(emb, m, temperature=1e-3)
    # forward row: s=0 of frame 0 vs frame 1 tokens: <(1,0),(0.6,0.8)>=0.6, <(1,0),(1,0)>=1 -> CE target 1
    # backward column: t=1 of frame 1 vs frame 0 tokens: <(1,0),(1,0)>=1, <(0,1),(1,0)>=0 -> CE target 0
    T = 1e-3
    fwd = -(1.0 / T) + math.log(math.exp((0.6 - 1.0) / T) + 1.0) + 1.0 / T
    bwd = -(1.0 / T) + (1.0 / T) + math.log(1.0 + math.exp(-1.0 / T))
    assert torch.isfinite(loss)
    assert float(loss) == pytest.approx(0.5 * (fwd + bwd), abs=1e-5)


# --------------------------------------------------------------------------- training on data with no matches
@pytest.mark.slow
def test_train_on_scenes_without_valid_depth_stays_finite(base_scene, tmp_path):
    import gaspprobe
    import pandas as pd
    from safetensors.torch import load_file

    from gaspprobe.models import build_tiny
    from gaspprobe.scenes import save_scene

    build_tiny("qwen2_5_vl", tmp_path / "m", seed=0)
    for k in range(2):
        save_scene(no_depth(base_scene, f"scene000{k}_00"), tmp_path / "s" / f"scene000{k}_00")
    cfg = dict(steps=3, batch_size=1, frames_per_clip=2, clips_per_scene=2, checkpoint_every=2, eval_every=0,
               warmup_steps=1, lora_rank=4, threads=1)
    res = gaspprobe.train(str(tmp_path / "m"), tmp_path / "s", tmp_path / "t", cfg)
    log = pd.read_parquet(tmp_path / "t" / "train_log.parquet")
    assert len(log) == 3
    num = log.select_dtypes("number")
    losses = num[[c for c in num.columns if "loss" in c or c.endswith("/corr") or c.endswith("/depth")]]
    assert np.isfinite(losses.to_numpy()).all() and (losses.to_numpy() == 0).all()
    assert (log["n_matches"] == 0).all()
    for f in (tmp_path / "t" / "heads.safetensors", tmp_path / "t" / "model" / "model.safetensors"):
        for k, v in load_file(str(f)).items():
            assert torch.isfinite(v.float()).all(), (f.name, k)
    assert res.summary["final_loss"] == 0.0


# --------------------------------------------------------------------------- benchmark metrics
def test_metrics_no_answer_and_empty():
    from gaspprobe.benchmarking.metrics import accuracy, allangles_micro, mra, vsibench_macro
    import pandas as pd

    assert mra(None, "2.5") == 0.0 and mra(float("nan"), "2.5") == 0.0 and mra(1e300, "2.5") == 0.0
    assert accuracy(None, "A") == 0.0
    empty = pd.DataFrame({"question_type": pd.Series([], dtype=str), "task": pd.Series([], dtype=str),
                          "score": pd.Series([], dtype=float), "pair_idx": pd.Series([], dtype=object)})
    for agg in (vsibench_macro, allangles_micro):
        out = agg(empty)
        for x in _walk_numbers(out):  # an empty benchmark has no score: NaN (-> null), never a fake 0
            assert not math.isinf(x)


def test_report_of_a_probe_with_nothing_to_match(base_scene, tmp_path, capsys):
    """A probe run with n=0 everywhere still makes a report: no value shown as '–', never 'nan'."""
    import re

    from gaspprobe.cli import main

    _probe([flipped(base_scene)], tmp_path / "p")
    with pytest.raises(SystemExit) as e:
        main(["report", str(tmp_path / "p"), "--out", str(tmp_path / "rep"), "--no-pdf"])
    _, err = capsys.readouterr()
    assert e.value.code == 0, err
    md = (tmp_path / "rep" / "report.md").read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    assert not re.search(r"\bnan\b", md.lower()) and "–" in md
    assert not re.search(r">\s*nan\s*<", html.lower())
