"""Speed of scene rendering and ground-truth matches, measured (not a test).

1. ``render_fps_448``: frames per second of :func:`gaspprobe.scenes.generate_scene` at 448x448
   (layout + ray casting + shading, everything a ``scenes make`` frame costs except PNG
   encoding), one torch thread; issue floor 10/s, aim 20/s.
2. ``gt_matches_per_s``: candidate patch matches per second, a candidate being one source token
   of one frame pair (every box of frame i is considered; the figure counts all of them, matched
   or not), through :func:`gaspprobe.scenes.patch_matches_many` on every ordered pair of a
   16-frame 448x448 scene with a 32x32 token grid (1024 tokens: a 14-px patch grid at 448).
   ``gt_matches_per_s_single`` is the same through one :func:`patch_matches` call per pair.

Each figure is the best of a few repeats by wall clock (this machine is shared, and the best run
is the one least disturbed by other processes); ``*_cpu`` variants divide by this process's CPU
time instead, which is less sensitive to other load. Run: ``python benchmarks/perf/scenes.py
[--quick]``; ``run(quick=False) -> dict``.
"""

from __future__ import annotations

import sys
import time


def _best(fn, repeats: int) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds) over ``repeats`` calls after one warm-up."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def run(quick: bool = False) -> dict:
    import torch

    torch.set_num_threads(1)
    from gaspprobe.scenes import generate_scene, patch_matches, patch_matches_many

    frames = 4 if quick else 8
    repeats = 1 if quick else 3
    wall, cpu = _best(lambda: generate_scene(0, frames=frames, size=448), repeats)
    out = {"render_fps_448": frames / wall, "render_fps_448_cpu": frames / cpu}

    F = 8 if quick else 16
    scene = generate_scene(1, frames=F, size=448)
    pairs = [(i, j) for i in range(F) for j in range(F) if i != j]
    grid = (32, 32)
    n_cand = len(pairs) * 32 * 32
    res: dict = {}

    def many():
        res["m"] = patch_matches_many(scene, pairs, grid)

    wall, cpu = _best(many, repeats)
    out["gt_matches_per_s"] = n_cand / wall
    out["gt_matches_per_s_cpu"] = n_cand / cpu
    out["gt_visible_fraction"] = sum(len(m) for m in res["m"]) / n_cand
    few = pairs[:: max(1, len(pairs) // 24)]

    def single():
        for i, j in few:
            patch_matches(scene, i, j, grid)

    wall, cpu = _best(single, repeats)
    out["gt_matches_per_s_single"] = len(few) * 1024 / wall
    out["gt_matches_per_s_single_cpu"] = len(few) * 1024 / cpu
    return out


if __name__ == "__main__":
    r = run(quick="--quick" in sys.argv)
    for k, v in r.items():
        print(f"{k:32s} {v:,.3f}" if v < 1000 else f"{k:32s} {v:,.0f}")
