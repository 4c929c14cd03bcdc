"""Benchmark-runner speed: batched vs one-at-a-time generation, and the cost of a resume.

    python benchmarks/perf/bench.py [--quick] [--device cuda]

``run(quick=False, device="cpu") -> dict`` (used by ``gaspprobe perf``). Figures, measured in this
one run on the tiny random Qwen2.5-VL (``gaspprobe.models.testing``) over a synthetic VSI-format
dataset (procedural scenes -> ``bench synthesize``), 4 frames per video, one torch thread on CPU:

* ``samples_per_s_single`` / ``samples_per_s_batched``: questions per second through
  :func:`gaspprobe.benchmarking.runner.run` (decode, generate, parse, score, write) with
  ``batch_size=1`` and ``batch_size=8``; ``batched_speedup`` is their ratio (target >= 1).
* ``resume_noop_s``: wall time of rerunning a finished run (nothing left to do; target < 1 s).
* ``resume_all_done_s``: a run whose every prediction is on disk but whose manifest is not
  complete (a crash after the last sample): loads the data, generates nothing, rewrites the tables.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def run(quick: bool = False, device: str = "cpu") -> dict:
    import torch

    torch.set_num_threads(1)
    from gaspprobe import io
    from gaspprobe.benchmarking.runner import run as bench_run
    from gaspprobe.benchmarking.synthetic import synthesize
    from gaspprobe.models import load
    from gaspprobe.models.testing import tiny_model_dir
    from gaspprobe.scenes import generate_scene

    tmp = Path(tempfile.mkdtemp(prefix="gaspprobe-perf-bench-"))
    try:
        scenes = [generate_scene(s, frames=8, size=64, motion=0.6) for s in range(2 if quick else 4)]
        synthesize(scenes, tmp / "data", format="vsibench", per_type=1 if quick else 2)
        adapter = load(tiny_model_dir(), dtype="float32", device=device)
        limit = 16 if quick else 48
        kw = dict(frames=4, limit=limit, progress=False)
        bench_run(adapter, "synthetic_vsi", tmp / "data", tmp / "warm", batch_size=2, limit=4, frames=4,
                  progress=False)  # warm-up: first decode, kernels, tokenizer caches
        reps = 1 if quick else 2
        single, batched, n = [], [], 0
        for r in range(reps):
            t0 = time.perf_counter()
            res = bench_run(adapter, "synthetic_vsi", tmp / "data", tmp / f"b1_{r}", batch_size=1, **kw)
            single.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            bench_run(adapter, "synthetic_vsi", tmp / "data", tmp / f"b8_{r}", batch_size=8, **kw)
            batched.append(time.perf_counter() - t0)
            n = res.summary["n"]
        t_single, t_batched = statistics.median(single), statistics.median(batched)
        noop = []
        for _ in range(3):
            t0 = time.perf_counter()
            bench_run(adapter, "synthetic_vsi", tmp / "data", tmp / "b8_0", batch_size=8, **kw)
            noop.append(time.perf_counter() - t0)
        m = io.read_manifest(tmp / "b8_0")
        io.write_manifest(tmp / "b8_0", {**m, "status": "running"})
        t0 = time.perf_counter()
        bench_run(adapter, "synthetic_vsi", tmp / "data", tmp / "b8_0", batch_size=8, **kw)
        all_done = time.perf_counter() - t0
        return {
            "n": n, "frames": 4, "batch_size": 8, "device": device,
            "samples_per_s_single": n / t_single, "samples_per_s_batched": n / t_batched,
            "batched_speedup": t_single / t_batched,
            "resume_noop_s": statistics.median(noop), "resume_all_done_s": all_done,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    import json

    dev = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu"
    print(json.dumps(run(quick="--quick" in sys.argv, device=dev), indent=2))
