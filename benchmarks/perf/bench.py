"""Benchmark-runner speed: one at a time, batched in dataset order (the runner before length
grouping), batched and grouped by prompt length (the runner now), the blind pass, and resumes.

    python benchmarks/perf/bench.py [--quick] [--device cuda]

``run(quick=False, device="cpu") -> dict`` (used by ``gaspprobe perf``). Figures, measured in this
one run on the tiny random Qwen2.5-VL (``gaspprobe.models.testing``) over synthetic data made from
procedural scenes, one torch thread on CPU, one modality each:

* video: synthetic VSI (``vsi_*``), 4 frames per video; images: synthetic All-Angles (``aa_*``,
  2-4 views per question).
* ``*_samples_per_s_single`` / ``*_samples_per_s_ordered`` / ``*_samples_per_s_grouped``: questions
  per second through :func:`gaspprobe.benchmarking.runner.run` (decode, generate, parse, score,
  write) with ``batch_size=1``, ``batch_size=8`` in dataset order, and ``batch_size=8`` grouped by
  prompt length (:func:`~gaspprobe.benchmarking.runner.length_groups`; one processor call per
  batch either way). ``batched_speedup`` = grouped / single on the video set (target >= 1);
  ``grouping_speedup`` = grouped / ordered.
* ``blind_overhead``: wall time with the blind baseline pass (default for real models) / without.
* ``resume_noop_s``: wall time of rerunning a finished run (nothing left to do; target < 1 s).
* ``resume_all_done_s``: every prediction on disk but the manifest not complete (a crash after the
  last sample): loads the data, generates nothing, rewrites the tables.
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
    from gaspprobe.benchmarking import runner
    from gaspprobe.benchmarking.synthetic import synthesize
    from gaspprobe.models import load
    from gaspprobe.models.testing import tiny_model_dir
    from gaspprobe.scenes import generate_scene

    tmp = Path(tempfile.mkdtemp(prefix="gaspprobe-perf-bench-"))
    grouped = runner.length_groups

    def ordered(todo, batch_size, window=8):  # the runner before length grouping: dataset order
        return [list(todo[b: b + batch_size]) for b in range(0, len(todo), batch_size)]

    try:
        scenes = [generate_scene(s, frames=8, size=64, motion=0.6) for s in range(2 if quick else 4)]
        synthesize(scenes, tmp / "vsi", format="vsibench", per_type=1 if quick else 2)
        synthesize(scenes, tmp / "aa", format="allangles", per_type=1 if quick else 2)
        adapter = load(tiny_model_dir(), dtype="float32", device=device)
        limit = 16 if quick else 48
        sets = {"vsi": ("synthetic_vsi", tmp / "vsi", {"frames": 4}), "aa": ("synthetic_allangles", tmp / "aa", {})}
        for name, (card, data, extra) in sets.items():  # warm-up: first decode, kernels, tokenizer caches
            runner.run(adapter, card, data, tmp / f"warm_{name}", batch_size=2, limit=4, blind=False, **extra)
        reps = 1 if quick else 2
        out: dict = {"device": device, "batch_size": 8}

        def timed(card, data, folder, extra, **kw):
            t0 = time.perf_counter()
            res = runner.run(adapter, card, data, folder, limit=limit, **extra, **kw)
            return time.perf_counter() - t0, res.summary["n"]

        for name, (card, data, extra) in sets.items():
            t = {"single": [], "ordered": [], "grouped": [], "blind": []}
            n = 0
            for r in range(reps):
                t["single"].append(timed(card, data, tmp / f"{name}1_{r}", extra, batch_size=1, blind=False)[0])
                runner.length_groups = ordered
                try:
                    t["ordered"].append(timed(card, data, tmp / f"{name}o_{r}", extra, batch_size=8, blind=False)[0])
                finally:
                    runner.length_groups = grouped
                dt, n = timed(card, data, tmp / f"{name}g_{r}", extra, batch_size=8, blind=False)
                t["grouped"].append(dt)
                t["blind"].append(timed(card, data, tmp / f"{name}b_{r}", extra, batch_size=8, blind=True)[0])
            med = {k: statistics.median(v) for k, v in t.items()}
            out[f"{name}_n"] = n
            for k in ("single", "ordered", "grouped"):
                out[f"{name}_samples_per_s_{k}"] = n / med[k]
            out[f"{name}_grouping_speedup"] = med["ordered"] / med["grouped"]
            out[f"{name}_blind_overhead"] = med["blind"] / med["grouped"]
        out["batched_speedup"] = out["vsi_samples_per_s_grouped"] / out["vsi_samples_per_s_single"]
        out["grouping_speedup"] = out["vsi_grouping_speedup"]
        out["blind_overhead"] = out["vsi_blind_overhead"]

        card, data, extra = sets["vsi"]
        noop = []
        for _ in range(3):
            noop.append(timed(card, data, tmp / "vsig_0", extra, batch_size=8, blind=False)[0])
        m = io.read_manifest(tmp / "vsig_0")
        io.write_manifest(tmp / "vsig_0", {**m, "status": "running"})
        out["resume_noop_s"] = statistics.median(noop)
        out["resume_all_done_s"] = timed(card, data, tmp / "vsig_0", extra, batch_size=8, blind=False)[0]
        return out
    finally:
        runner.length_groups = grouped
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    import json

    dev = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu"
    print(json.dumps(run(quick="--quick" in sys.argv, device=dev), indent=2))
