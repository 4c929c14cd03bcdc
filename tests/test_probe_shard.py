"""Scene sharding under torchrun: two CPU processes (gloo) give the one-process result.

The real launcher path: ``python -m torch.distributed.run --nproc-per-node 2 -m gaspprobe.cli
probe ...``. Correspondence rows must be identical; depth-probe rows equal to float64 rounding
(the per-scene ridge statistics are re-centred when merged).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from gaspprobe import io


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from gaspprobe.scenes import make_scenes

    d = tmp_path_factory.mktemp("shard_scenes")
    make_scenes(d, n_scenes=5, frames=4, size=64, seed=2)
    return d


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _probe_args(scenes, out):
    return ["probe", "--model", "oracle:xyz:8x8", "--scenes", str(scenes), "--out", str(out), "--recipe",
            "quick", "--gaps", "1,2", "--modes", "hidden,attention,oracle:random", "--threads", "1"]


@pytest.mark.slow
def test_two_processes_match_one(scenes, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "gaspprobe.cli", *_probe_args(scenes, tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", str(_free_port()), "-m", "gaspprobe.cli",
                          *_probe_args(scenes, tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    assert io.read_manifest(tmp_path / "two", kind="probe")["world_size"] == 2
    a = pd.read_parquet(tmp_path / "one" / "probe.parquet")
    b = pd.read_parquet(tmp_path / "two" / "probe.parquet")
    depth = a.metric.str.startswith("depth/")
    assert len(a) == len(b) and depth.any()
    pd.testing.assert_frame_equal(a[~depth].reset_index(drop=True), b[~depth].reset_index(drop=True))
    pd.testing.assert_frame_equal(a[depth].reset_index(drop=True), b[depth].reset_index(drop=True),
                                  check_exact=False, rtol=1e-9, atol=1e-12)
    sa = json.loads((tmp_path / "one" / "summary.json").read_text())
    sb = json.loads((tmp_path / "two" / "summary.json").read_text())
    for k in ("peak_layer", "peak_accuracy", "accuracy", "robustness", "n_matches", "n_pairs", "attention",
              "oracle:random", "confidence_spearman"):
        assert sa[k] == sb[k], k


def test_merge_ridge_equals_one_pass():
    import torch

    from gaspprobe.probing.depth import RidgeStats
    from gaspprobe.probing.shard import merge_ridge, ridge_state

    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(20, 6, generator=g) * 3 + 10 * k for k in range(3)]
    ys = [torch.randn(20, generator=g) for _ in range(3)]
    one = RidgeStats(6)
    parts = []
    for x, y in zip(xs, ys):
        one.update(x, y)
        p = RidgeStats(6)
        p.update(x, y)
        parts.append(ridge_state(p))
    m = merge_ridge(parts)
    assert m.n == one.n and torch.allclose(m.xtx, one.xtx, rtol=1e-12, atol=1e-9)
    w1, b1 = one.solve(0.1)
    w2, b2 = m.solve(0.1)
    assert torch.allclose(w1, w2, rtol=1e-9, atol=1e-12) and b1 == pytest.approx(b2, rel=1e-9)


@pytest.mark.slow
def test_a_refused_out_stops_every_rank_in_one_line(scenes, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("not a run")
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", str(_free_port()), "-m", "gaspprobe.cli",
                          *_probe_args(scenes, out)], capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode != 0
    assert two.stderr.count("is not a gaspprobe run") >= 2, two.stderr[-2000:]
