"""Speed and memory of a GASP training step (``gaspprobe perf`` area ``train``).

Figures (tiny Qwen2.5-VL, LoRA r=32 + projector, one torch thread unless told otherwise):

- ``gasp_step_ratio``: wall time of one GASP step (image_features with hooks on every layer, heads,
  InfoNCE + depth losses, backward, optimizer step; GT matches cached as they are after the first
  epoch) / one plain step of the same LoRA model on the same batch (processor, forward with the
  LM loss, backward, optimizer step). Target <= 1.3.
- ``gasp_step_s``, ``plain_step_s``, ``clips_per_s`` at the default clip (4 frames, batch 4).
- ``gt_cold_ms_per_clip``: computing a clip's GT matches the first time (cached afterwards).
- ``by_frames``: {F: {"step_s", "clips_per_s", "peak_rss_mb", "peak_delta_mb"}} for F frames per
  clip (batch 2), each in a fresh subprocess so that the peak resident memory is the step's own
  (``peak_delta_mb`` = peak resident size sampled every 2 ms during the steps minus the resident
  size after set-up, before the first step); on CUDA also ``torch.cuda.max_memory_allocated`` (``cuda_peak_mb``).

- ``loader``: the training data path at scale (issue 17): ``clips_per_s`` of
  :func:`gaspprobe.training.data.batch_stream` with a COLD GT cache (every clip new, as on thousands
  of scenes) from scenes saved on disk and read lazily, in process (``workers_0``) and with
  DataLoader workers (``workers_2``), next to the training step's clips/s on the same clips
  (``step_clips_per_s``); ``loader_vs_step`` = best loader rate / step rate (target >= 3: the
  loader must never be what a step waits for).

Run: ``python benchmarks/perf/train.py [--quick]``. Medians of repeats after a warm-up.
``python benchmarks/perf/train.py --loader-scale [--root DIR]``: issue 17's figure at its size (200
scenes of 24 frames at 640x480 on disk with a ``scenes.parquet`` index, 16-frame clips; with
``--root``, also the loader's memory from 20 vs 200 scenes, each in a fresh process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _setup(frames: int, batch: int, device: str = "cpu"):
    import torch

    from gaspprobe.models.testing import tiny_model_dir
    from gaspprobe.models import load
    from gaspprobe.scenes import generate_scene
    from gaspprobe.training.config import TrainConfig
    from gaspprobe.training.data import ClipPlan, MatchCache
    from gaspprobe.training.heads import HeadBank, query_weights
    from gaspprobe.training.loop import GaspModule
    from gaspprobe.training.surgery import setup_model

    torch.manual_seed(0)
    adapter = load(str(tiny_model_dir("qwen2_5_vl")), device=device)
    cfg = TrainConfig(frames_per_clip=frames, batch_size=batch)
    scenes = [generate_scene(s, frames=max(16, frames), size=224) for s in range(2)]
    run, _, _ = setup_model(adapter, cfg, "projector")
    layers = [f"llm.{i}" for i in range(adapter.num_layers)]
    heads = HeadBank(layers, adapter.hidden_size, min(256, adapter.hidden_size // 2)).to(device)
    heads.init("svd", query_weights(adapter, layers))
    module = GaspModule(adapter, run, heads, layers).train()
    grid = adapter.token_grid(scenes[0].size, frames)
    cache = MatchCache(scenes, grid.frame_boxes(0), (grid.rows, grid.cols))
    plan = ClipPlan([s.num_frames for s in scenes], frames, cfg.clip_window, 8, 0)
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    return adapter, module, cache, plan, opt, cfg


def _gasp_step(module, cache, clips, opt, cfg, device):
    from gaspprobe.training.losses import gasp_loss

    frames = cache.frames(clips)
    m = {k: v.to(device) for k, v in cache.matches(clips).items()}
    _, embs, _ = module(frames)
    loss, _ = gasp_loss(embs, m, temperature=cfg.temperature, lambda_corr=cfg.lambda_corr,
                        lambda_depth=cfg.lambda_depth)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def _plain_step(adapter, module, cache, clips, opt):
    from gaspprobe.models.base import DEFAULT_PROMPT

    frames = cache.frames(clips).numpy()
    inputs = adapter.prepare([(f, DEFAULT_PROMPT) for f in frames]).to(adapter.device)
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    out = module.model(**inputs, labels=labels, use_cache=False)
    out.loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def _time(fn, reps: int) -> float:
    from gaspprobe.perf import median_seconds

    return median_seconds(fn, reps, warmup=1)


def _by_frames_child(frames: int, batch: int, reps: int, device: str) -> dict:
    import resource

    import torch

    torch.set_num_threads(1)
    adapter, module, cache, plan, opt, cfg = _setup(frames, batch, device)
    clips = plan.batch(0, batch)
    cache.matches(clips)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    import gc
    import threading

    gc.collect()
    base = _rss_now_mb()             # after set-up, before any step: the step's own footprint
    peak = [base]                    # (activations, grads, AdamW state) is what rises above it
    stop = threading.Event()

    def poll():                      # ru_maxrss would include set-up (rendering); sample the steps
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_now_mb())
            stop.wait(0.002)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    try:
        t = _time(lambda: _gasp_step(module, cache, clips, opt, cfg, device), reps)  # includes a warm-up
    finally:
        stop.set()
        th.join()
    out = {"step_s": t, "clips_per_s": batch / t, "peak_rss_mb": peak[0], "peak_delta_mb": peak[0] - base,
           "process_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _rss_now_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - non-Linux
        return float("nan")


def _cold_clips_per_s(scenes, grid, plan, n_batches: int, workers: int) -> float:
    """Clips/s of the training data stream with a COLD GT cache (every clip new)."""
    from gaspprobe.training.data import ClipBatches, MatchCache, batch_stream

    cache = MatchCache(scenes, grid.frame_boxes(0), (grid.rows, grid.cols), max_gap=16)
    t = time.perf_counter()
    k = sum(1 for _ in batch_stream(ClipBatches(plan, cache, 1), 0, n_batches, workers))
    return k / (time.perf_counter() - t)


def _loader(n_scenes: int, frames: int, size: int, clip_frames: int, n_batches: int, device: str = "cpu") -> dict:
    """Cold-cache loader throughput vs the training step on ``clip_frames``-frame clips (batch 1)."""
    import tempfile

    import torch

    from gaspprobe.scenes import generate_scene, load_scenes, save_scene
    from gaspprobe.training.data import ClipPlan, MatchCache

    root = Path(tempfile.mkdtemp(prefix="perf-loader-"))
    for s in range(n_scenes):
        sc = generate_scene(s, frames=frames, size=size)
        save_scene(sc, root / sc.name)
    scenes = load_scenes(root, lazy=True)
    adapter, module, _, _, opt, cfg = _setup(clip_frames, 1, device)
    grid = adapter.token_grid(scenes[0].size, clip_frames)
    plan = ClipPlan([s.num_frames for s in scenes], clip_frames, 8, 1, seed=0)
    out: dict = {"n_scenes": n_scenes, "frames": frames, "size": size, "clip_frames": clip_frames}
    for w in (0, 2):
        out[f"workers_{w}"] = _cold_clips_per_s(scenes, grid, plan, n_batches, w)
    cache = MatchCache(scenes, grid.frame_boxes(0), (grid.rows, grid.cols), max_gap=16)
    clips = plan.batch(0, 1)
    cache.matches(clips)
    step = _time(lambda: _gasp_step(module, cache, clips, opt, cfg, device), 3)
    out["step_clips_per_s"] = 1 / step
    out["loader_vs_step"] = max(out["workers_0"], out["workers_2"]) / out["step_clips_per_s"]
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    torch.set_num_threads(1)
    return out


def _loader_scale(n_max: int = 200, n_small: int = 20, frames: int = 24, size: tuple[int, int] = (480, 640),
                  clip_frames: int = 16, n_batches: int = 24, device: str = "cpu", root: str | None = None) -> dict:
    """Issue 17's figure: cold-cache loader clips/s on ``clip_frames``-frame clips at ``size`` from an
    on-disk dataset of ``n_max`` scenes (read lazily), against the training step's clips/s on the
    same clips; and the loader's resident memory after streaming from ``n_small`` vs ``n_max``
    scenes (flat = memory does not grow with the dataset). Scenes are rendered once into ``root``
    (kept and reused when given; the rendering is not timed)."""
    import tempfile

    import torch

    from gaspprobe.scenes import generate_scene, load_scenes, save_scene
    from gaspprobe.training.data import ClipBatches, ClipPlan, MatchCache, batch_stream

    keep = root is not None
    base = Path(root) if keep else Path(tempfile.mkdtemp(prefix="perf-loader-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for s in range(n_max):
        name = f"scene{s:04d}_00"
        if not (base / name).is_dir():
            save_scene(generate_scene(s, frames=frames, size=size, name=name), base / name)
    render_s = time.perf_counter() - t0
    if not (base / "scenes.parquet").is_file():  # what a user with thousands of scenes does
        from gaspprobe.scenes import write_index

        write_index(base)
    adapter, module, _, _, opt, cfg = _setup(clip_frames, 1, device)
    out: dict = {"n_scenes": n_max, "frames": frames, "size": list(size), "clip_frames": clip_frames,
                 "render_s": round(render_s, 1)}
    rates: dict = {}
    for n in (n_small, n_max):
        scenes = load_scenes(base, lazy=True)[:n]
        grid = adapter.token_grid(scenes[0].size, clip_frames)
        plan = ClipPlan([sc.num_frames for sc in scenes], clip_frames, 8, 1, seed=0)
        for w in (0, 2):
            rates[f"{n}_workers_{w}"] = _cold_clips_per_s(scenes, grid, plan, n_batches, w)
        # memory: the in-process loader streaming every batch, resident size after vs before
        cache = MatchCache(scenes, grid.frame_boxes(0), (grid.rows, grid.cols), max_gap=16)
        before = _rss_now_mb()
        for _ in batch_stream(ClipBatches(plan, cache, 1), 0, n_batches, 0):
            pass
        out[f"rss_growth_mb_{n}"] = round(_rss_now_mb() - before, 1)
        if n == n_max:
            clips = plan.batch(0, 1)
            cache.matches(clips)
            step = _time(lambda: _gasp_step(module, cache, clips, opt, cfg, device), 7)
            out["step_clips_per_s"] = 1 / step
    out.update({f"clips_per_s_{k}": round(v, 3) for k, v in rates.items()})
    best = max(rates[f"{n_max}_workers_0"], rates[f"{n_max}_workers_2"])
    out["loader_vs_step"] = best / out["step_clips_per_s"]
    if not keep:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    torch.set_num_threads(1)
    return out


def _loader_memory_child(root: str, n: int, n_batches: int, clip_frames: int = 16) -> dict:
    """In a fresh process: peak resident memory while streaming ``n_batches`` cold clips from the
    first ``n`` scenes of ``root`` (lazy), above the resident size once the scenes are listed and
    the loader built (Linux VmHWM after resetting it through /proc/self/clear_refs)."""
    import gc

    import torch

    from gaspprobe.scenes import load_scenes
    from gaspprobe.training.data import ClipBatches, ClipPlan, MatchCache, batch_stream, regular_boxes

    torch.set_num_threads(1)
    scenes = load_scenes(root, lazy=True)[:n]
    H, W = scenes[0].size
    boxes = regular_boxes((0.0, 0.0, float(W), float(H)), 6, 8)
    plan = ClipPlan([sc.num_frames for sc in scenes], clip_frames, 8, 1, seed=0)
    cache = MatchCache(scenes, boxes, (6, 8), max_gap=16)
    next(iter(batch_stream(ClipBatches(plan, cache, 1), n_batches, n_batches + 1, 0)))  # warm the code paths
    gc.collect()

    def status(key: str) -> int:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith(key))

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    for _ in batch_stream(ClipBatches(plan, cache, 1), 0, n_batches, 0):
        pass
    return {"scenes": n, "clips": n_batches, "peak_extra_mb": round((status("VmHWM") - before) / 2**20, 1),
            "rss_mb": round(status("VmRSS") / 2**20, 1)}


def loader_memory(root: str, sizes=(20, 200), n_batches: int = 48) -> list[dict]:
    """:func:`_loader_memory_child` for each dataset size, each in a fresh subprocess."""
    here = Path(__file__).resolve()
    out = []
    for n in sizes:
        code = (f"import json,sys; sys.path.insert(0, {str(here.parent)!r}); import train as T; "
                f"print('RESULT', json.dumps(T._loader_memory_child({root!r}, {n}, {n_batches})))")
        env = {**os.environ, "PYTHONPATH": str(here.parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "OMP_NUM_THREADS": "1"}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1200)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
        out.append(json.loads(line[-1][7:]) if line else {"scenes": n, "error": (r.stderr or "")[-300:]})
    return out


def run(quick: bool = False, device: str = "cpu") -> dict:
    """Measure the figures above; ``quick`` uses fewer repeats and frame counts."""
    import torch

    torch.set_num_threads(1)
    reps = 3 if quick else 7
    batch = 4
    adapter, module, cache, plan, opt, cfg = _setup(4, batch, device)
    clips = plan.batch(0, batch)
    t = time.perf_counter()
    cache.matches(clips)
    gt_cold = (time.perf_counter() - t) / batch
    gasp = _time(lambda: _gasp_step(module, cache, clips, opt, cfg, device), reps)
    plain = _time(lambda: _plain_step(adapter, module, cache, clips, opt), reps)
    gasp2 = _time(lambda: _gasp_step(module, cache, clips, opt, cfg, device), reps)  # interleave: drift
    gasp = min(gasp, gasp2)
    res = {"gasp_step_ratio": gasp / plain, "gasp_step_s": gasp, "plain_step_s": plain,
           "clips_per_s": batch / gasp, "gt_cold_ms_per_clip": gt_cold * 1e3, "by_frames": {}}
    here = Path(__file__).resolve()
    for F in ((2, 4) if quick else (2, 4, 8, 16)):
        code = (f"import json,sys; sys.path.insert(0, {str(here.parent)!r}); import train as T; "
                f"print('RESULT', json.dumps(T._by_frames_child({F}, 2, {2 if quick else 3}, {device!r})))")
        env = {**os.environ, "PYTHONPATH": str(here.parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
        res["by_frames"][F] = json.loads(line[-1][7:]) if line else {"error": (p.stderr or "")[-300:]}
    res["loader"] = _loader(6 if quick else 24, 16, 224, 8 if quick else 16, 6 if quick else 12, device)
    return res


if __name__ == "__main__":
    if "--loader-scale" in sys.argv:  # issue 17: 200 scenes at 640x480 on disk, 16-frame clips
        root = sys.argv[sys.argv.index("--root") + 1] if "--root" in sys.argv else None
        import torch

        torch.set_num_threads(1)
        out = _loader_scale(root=root)
        if root is not None:  # memory flat in the dataset size: fresh processes, peak resident memory
            out["memory"] = loader_memory(root)
    else:
        out = run(quick="--quick" in sys.argv)
    print(json.dumps(out, indent=2))
