"""The whole loop in one call: scenes -> base probe -> GASP train -> probe -> benchmarks -> report.

Each stage writes into its own folder under ``OUT`` with a manifest; a rerun skips every stage
whose folder holds a complete run of the same config and redoes the others (so a killed loop
resumes where it stopped). The stages, in order::

    OUT/scenes/train, OUT/scenes/heldout   synthetic scenes (or the user's --scenes / --heldout)
    OUT/models/base                        the base model (a tiny one unless --model is given)
    OUT/probe/base                         the probe on held-out scenes
    OUT/train/gasp                         GASP training on the training scenes (model in .../model)
    OUT/probe/gasp                         the probe of the trained model on the same held-out scenes
    OUT/bench/data/<name>                  synthetic benchmark data written from the held-out scenes
    OUT/bench/<name>/{base,gasp}           benchmark runs
    OUT/report                             report.html, report.md and the figures

The default (synthetic scenes, a tiny model) is sized to finish within ~10 minutes on a 2-core
CPU; ``quick=True`` is a ~1 minute first look with the same stages on less data.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from gaspprobe import config as C
from gaspprobe import io
from gaspprobe.errors import ConfigError


#: Training steps of the tiny default loop (~0.4 s/step on 2 CPU threads: about 5 minutes).
TINY_LOOP_STEPS = 700


@dataclass
class LoopConfig:
    """Settings of ``gaspprobe loop`` (CLI flags map one-to-one onto these fields)."""

    model: str | None = C.field(None, help="Base model: a hub id or a local dir. None = build a tiny model.")
    arch: str = C.field("qwen2_5_vl", help="Architecture of the tiny model built when --model is not given.")
    scenes: str | None = C.field(None, help="Training scenes folder. None = generate synthetic scenes.")
    heldout: str | None = C.field(None, help="Held-out scenes folder. None = generate synthetic ones (other seed).")
    n_train_scenes: int = C.field(48, help="Synthetic training scenes to generate.")
    n_heldout_scenes: int = C.field(8, help="Synthetic held-out scenes to generate.")
    frames: int = C.field(16, help="Frames per synthetic scene.")
    size: int = C.field(224, help="Synthetic frame size (pixels, square). 224 by default: the tiny "
                                  "models resize any frame to 224 (8x8 tokens), so larger renders add "
                                  "time and nothing else; use 448 (or your own scenes) for real models.")
    seed: int = C.field(0, help="Seed of everything (held-out scenes use seed + 1000).")
    benchmarks: list[str] = C.field(default_factory=lambda: ["synthetic_vsi", "synthetic_allangles"],
                                    help="Benchmarks to run on both models.")
    vsibench_data: str | None = C.field(None, help="VSI-Bench parquet (or HF id) to add 'vsibench'.")
    video_root: str | None = C.field(None, help="VSI-Bench video root ({dataset}/{scene_name}.mp4).")
    allangles_data: str | None = C.field(None, help="All-Angles Bench data.json to add 'allangles'.")
    image_root: str | None = C.field(None, help="All-Angles Bench image root.")
    bench_limit: int | None = C.field(None, help="At most this many questions per benchmark.")
    bench_frames: int = C.field(8, help="Frames per sample for video benchmarks.")
    probe_recipe: str = C.field("gasp", help="Probe recipe name or path.")
    train_config: str | None = C.field(None, help="Training config file (TOML/YAML). None = the headline "
                                                    "config (full fine-tuning + vision tower, 16-frame clips) "
                                                    "for the tiny default, the TrainConfig defaults (LoRA, "
                                                    "tower frozen) for a --model.")
    train_steps: int | None = C.field(None, help="Override the training steps (tiny default: 700, "
                                                  "about 5 minutes on 2 CPU threads).")
    quick: bool = C.field(False, help="A ~1 minute first look: fewer scenes, frames and steps.")

    def resolved(self) -> "LoopConfig":
        """Apply ``quick`` (smaller data, fewer steps) to the fields left at their defaults."""
        if not self.quick:
            return self
        d = asdict(self)
        base = LoopConfig()
        q = {"n_train_scenes": 6, "n_heldout_scenes": 2, "frames": 8, "size": 224, "train_steps": 30,
             "bench_limit": 12, "bench_frames": 4, "probe_recipe": "quick"}
        for k, v in q.items():
            if d[k] == getattr(base, k):
                d[k] = v
        return C.from_dict(LoopConfig, d)


@dataclass
class LoopResult:
    out: Path
    stages: dict[str, dict]
    report: Path | None


def _stage(name: str, stages: dict, fn: Callable[[], Any], log: Callable[[str], None]) -> Any:
    t0 = time.perf_counter()
    log(f"[{name}] ...")
    res = fn()
    dt = time.perf_counter() - t0
    stages[name] = {"seconds": round(dt, 2)}
    log(f"[{name}] done in {dt:.1f}s")
    return res


def _scenes_stage(out: Path, n: int, frames: int, size: int, seed: int) -> Path:
    from gaspprobe.scenes import make_scenes

    # make_scenes owns the folder's manifest and its resume: a rerun with the same arguments is a
    # no-op, an interrupted one keeps its finished scenes, another config replaces stale ones.
    make_scenes(out, n_scenes=n, frames=frames, size=size, seed=seed)
    return out


def _model_stage(out: Path, arch: str, seed: int) -> Path:
    from gaspprobe.models import build_tiny

    cfg = {"arch": arch, "seed": seed}
    if io.is_complete(out, kind="model", config=cfg):
        return out
    build_tiny(arch, out, seed=seed)
    io.write_manifest(out, io.make_manifest("model", cfg, seed=seed, status="complete", model=f"tiny:{arch}"))
    return out


def loop(out: str | Path, config: LoopConfig | None = None, *, log: Callable[[str], None] = print,
         **overrides: Any) -> LoopResult:
    """Run (or resume) the whole loop into ``out``. ``overrides`` are :class:`LoopConfig` fields."""
    from gaspprobe import api

    cfg = config if config is not None else LoopConfig()
    if overrides:
        cfg = C.replace(cfg, **overrides)
    cfg = cfg.resolved()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Validate every config before the first stage runs: a typo must not cost minutes of work.
    from gaspprobe.probing.recipe import load_recipe
    from gaspprobe.training.trainer import resolve_config

    load_recipe(cfg.probe_recipe)
    train_over: dict[str, Any] = {"seed": cfg.seed}
    train_config: Any = cfg.train_config
    if train_config is None and cfg.model is None:
        # The tiny default trains what docs/training.md found best on the validation split of the
        # training scenes (full LLM + the random vision tower, whole-scene clips), for fewer steps
        # than the 10-minute headline so that the whole loop fits in ~10 minutes.
        from gaspprobe.training.headline import HEADLINE_CONFIG

        train_config = {**HEADLINE_CONFIG, "steps": TINY_LOOP_STEPS,
                        "frames_per_clip": min(HEADLINE_CONFIG["frames_per_clip"], cfg.frames)}
    if cfg.train_steps is not None:
        train_over["steps"] = cfg.train_steps
    tcfg = resolve_config(train_config, **train_over)
    if tcfg.threads == 0:  # training is the one stage that gains from several threads
        train_over["threads"] = min(2, os.cpu_count() or 1)
    # Rendering, probing and generation on small tensors gain little from intra-op threads, and
    # two-thread torch thrashes badly when anything else runs on a 2-core machine (17x slower
    # scene rendering was measured here): one thread for every stage but training.
    import torch

    torch.set_num_threads(1)
    io.atomic_write_json(out / "loop.json", {"config": asdict(cfg), "status": "running"})
    stages: dict[str, dict] = {}

    train_scenes = Path(cfg.scenes) if cfg.scenes else _stage(
        "scenes/train", stages, lambda: _scenes_stage(out / "scenes" / "train", cfg.n_train_scenes,
                                                      cfg.frames, cfg.size, cfg.seed), log)
    heldout = Path(cfg.heldout) if cfg.heldout else _stage(
        "scenes/heldout", stages, lambda: _scenes_stage(out / "scenes" / "heldout", cfg.n_heldout_scenes,
                                                        cfg.frames, cfg.size, cfg.seed + 1000), log)
    if cfg.model:
        base_model = cfg.model
    else:
        base_model = str(_stage("models/base", stages,
                                lambda: _model_stage(out / "models" / "base", cfg.arch, cfg.seed), log))

    _stage("probe/base", stages, lambda: api.probe(base_model, heldout, cfg.probe_recipe,
                                                   out=out / "probe" / "base"), log)
    _label(out / "probe" / "base", "base")
    # resume=True: a loop killed mid-training continues from the newest checkpoint (bitwise the same
    # weights); with no checkpoint it starts fresh, and a finished run with the same config is a no-op.
    tres = _stage("train/gasp", stages, lambda: api.train(base_model, train_scenes, out / "train" / "gasp",
                                                          train_config, resume=True, **train_over), log)
    torch.set_num_threads(1)  # the trainer set its own thread count
    gasp_model = str(getattr(tres, "model_dir", out / "train" / "gasp" / "model"))
    _stage("probe/gasp", stages, lambda: api.probe(gasp_model, heldout, cfg.probe_recipe,
                                                   out=out / "probe" / "gasp"), log)
    _label(out / "probe" / "gasp", "gasp")

    runs = [out / "probe" / "base", out / "train" / "gasp", out / "probe" / "gasp"]
    for name, data, extra in _bench_plan(cfg, heldout, out, stages, log):
        for label, model in (("base", base_model), ("gasp", gasp_model)):
            run_dir = out / "bench" / name / label
            _stage(f"bench/{name}/{label}", stages,
                   lambda: api.bench(model, name, data, run_dir, limit=cfg.bench_limit, **extra), log)
            _label(run_dir, label)
            runs.append(run_dir)

    rep = _stage("report", stages, lambda: api.report(runs, out / "report"), log)
    io.atomic_write_json(out / "loop.json", {"config": asdict(cfg), "status": "complete", "stages": stages,
                                             "runs": [str(r) for r in runs]})
    return LoopResult(out=out, stages=stages, report=Path(rep) if rep else None)


def _label(run_dir: Path, label: str) -> None:
    """Record the display label ("base"/"gasp") in a finished run's manifest (for the report)."""
    m = io.read_manifest(run_dir)
    if m.get("model_label") != label:
        m["model_label"] = label
        io.write_manifest(run_dir, m)


def _bench_plan(cfg: LoopConfig, heldout: Path, out: Path, stages: dict, log) -> list[tuple[str, Path, dict]]:
    """(benchmark name, data path, runner options) for every benchmark of the loop."""
    from gaspprobe.benchmarking.synthetic import synthesize

    plan = []
    for name in cfg.benchmarks:
        if name.startswith("synthetic_"):
            fmt = {"synthetic_vsi": "vsibench", "synthetic_allangles": "allangles"}.get(name)
            if fmt is None:
                raise ConfigError(f"benchmarks: unknown synthetic benchmark {name!r}; "
                                  "known: synthetic_vsi, synthetic_allangles")
            data_dir = out / "bench" / "data" / name
            scfg = {"scenes": str(heldout), "format": fmt, "seed": cfg.seed}
            if not io.is_complete(data_dir, kind="bench_data", config=scfg):
                _stage(f"bench/data/{name}", stages,
                       lambda: synthesize(heldout, data_dir, format=fmt, seed=cfg.seed), log)
                io.write_manifest(data_dir, io.make_manifest("bench_data", scfg, seed=cfg.seed,
                                                             status="complete"))
            plan.append((name, data_dir, {"frames": cfg.bench_frames}))
        elif name == "vsibench":
            if not cfg.vsibench_data:
                raise ConfigError("benchmarks: 'vsibench' needs --vsibench-data (and --video-root)")
            plan.append((name, Path(cfg.vsibench_data), {"video_root": cfg.video_root, "frames": cfg.bench_frames}))
        elif name == "allangles":
            if not cfg.allangles_data:
                raise ConfigError("benchmarks: 'allangles' needs --allangles-data (and --image-root)")
            plan.append((name, Path(cfg.allangles_data), {"image_root": cfg.image_root}))
        else:
            raise ConfigError(f"benchmarks: unknown benchmark {name!r}")
    if cfg.vsibench_data and "vsibench" not in cfg.benchmarks:
        plan.append(("vsibench", Path(cfg.vsibench_data), {"video_root": cfg.video_root, "frames": cfg.bench_frames}))
    if cfg.allangles_data and "allangles" not in cfg.benchmarks:
        plan.append(("allangles", Path(cfg.allangles_data), {"image_root": cfg.image_root}))
    return plan
