"""The whole loop in one call: scenes -> base probe -> GASP train -> probe -> benchmarks -> report.

The loop is a list of :class:`Stage` objects, each calling one subsystem directly (never through
:mod:`gaspprobe.api`, which imports this module). Every stage's folder is owned by its producer
through the run kernel (:mod:`gaspprobe.runs`): the producer decides fresh / cached / resume, and the
loop only passes each run its label ("base" / "gasp"). The loop writes no stage manifest; its own
folder ``OUT`` is a ``loop`` run (locked, so two loops never share a folder). A rerun skips every
stage whose folder holds a complete run of the same config (a killed loop resumes where it
stopped). The stages, in order::

    OUT/scenes/train, OUT/scenes/heldout   synthetic scenes (or the user's --scenes / --heldout)
    OUT/models/base                        the base model (a tiny one unless --model is given)
    OUT/probe/base                         the probe on held-out scenes
    OUT/train/gasp                         GASP training on the training scenes (model in .../model)
    OUT/probe/gasp                         the probe of the trained model on the same held-out scenes
    OUT/bench/data/<name>                  synthetic benchmark data written from the held-out scenes
    OUT/bench/<name>/{base,gasp}           benchmark runs
    OUT/report                             report.html, report.md and the figures

The default (synthetic scenes, a tiny model) is sized to finish within ~10 minutes on a 2-core
CPU; ``preset="quick"`` (``--quick``) is a ~1 minute first look with the same stages on less data,
and ``preset="headline"`` is the toy GASP headline of docs/training.md (96 training scenes of seed
1000, 16 held-out scenes of seed 2000, 10 minutes of training on 2 threads, no benchmarks), which
also writes ``OUT/headline.json`` / ``headline.md`` against the 0.70 / 0.85 targets.
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

#: The presets: values given to the fields a user left at their defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "quick": {"n_train_scenes": 6, "n_heldout_scenes": 2, "frames": 8, "size": 224, "train_steps": 30,
              "bench_limit": 12, "bench_frames": 4, "probe_recipe": "quick", "bench_blind": False},
    # The GASP headline at toy scale (docs/training.md): seeds 1000 / 2000 so no held-out room,
    # texture or camera path is trained on; the headline training config (HEADLINE_CONFIG, 1400
    # steps; a test keeps them equal) capped at 10 minutes of 2-thread CPU.
    "headline": {"n_train_scenes": 96, "n_heldout_scenes": 16, "frames": 16, "size": 224,
                 "train_scene_seed": 1000, "heldout_scene_seed": 2000, "train_minutes": 10.0,
                 "train_steps": 1400, "benchmarks": [], "train_threads": 2},
    # Issue 14's protocol at toy scale: the paper recipe (PCK@2patch headline, every Δt 1..24) on
    # video-like scenes (32 frames at 30 fps) at 448 px with a 448*448 pixel budget, so a tiny
    # Qwen2.5-VL sees 16x16 tokens per frame (chance at r=2 <= 0.10).
    "paper": {"n_train_scenes": 48, "n_heldout_scenes": 8, "frames": 32, "size": 448, "camera": "video",
              "max_pixels": 448 * 448, "probe_recipe": "paper", "train_scene_seed": 1000,
              "heldout_scene_seed": 2000, "train_minutes": 15.0, "benchmarks": [], "train_threads": 2},
}

#: The paper preset's training clips (on top of HEADLINE_CONFIG), chosen on the training scenes'
#: validation split: 4-frame clips from a +-16 frame window (16-frame clips: val PCK@2 0.607; 8: 0.679;
#: 4: 0.691 at equal time).
PAPER_TRAIN = {"frames_per_clip": 4, "clip_window": 16}

#: The headline's targets (the paper's 7B figures, for reference at toy scale).
TARGET_PEAK = 0.70
TARGET_ROBUSTNESS = 0.85


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
    camera: str = C.field("arc", help="Synthetic camera path: 'arc' (a quarter loop over the sequence, whatever "
                                      "its length) or 'video' (hand-held indoor video at --scene-fps; see "
                                      "docs/probe.md for the motion figures).")
    scene_fps: float = C.field(30.0, help="Frame rate of 'video' camera paths (frame k at time k / fps).")
    benchmarks: list[str] = C.field(default_factory=lambda: ["synthetic_vsi", "synthetic_allangles"],
                                    help="Benchmarks to run on both models.")
    vsibench_data: str | None = C.field(None, help="VSI-Bench parquet (or HF id) to add 'vsibench'.")
    video_root: str | None = C.field(None, help="VSI-Bench video root ({dataset}/{scene_name}.mp4).")
    allangles_data: str | None = C.field(None, help="All-Angles Bench data.json to add 'allangles'.")
    image_root: str | None = C.field(None, help="All-Angles Bench image root.")
    bench_limit: int | None = C.field(None, help="At most this many questions per benchmark.")
    bench_frames: int = C.field(8, help="Frames per sample for video benchmarks.")
    bench_scorer: str | None = C.field(None, help="generate (official: generate, then parse) | likelihood "
                                                  "(NON-official: the most likely option, multiple choice only). "
                                                  "None = likelihood for the tiny default (random tiny models never "
                                                  "generate a parseable answer), generate for a --model.")
    max_pixels: int | None = C.field(None, help="Processor pixel budget (upper bound of a frame's area) for "
                                                "every stage; None = the checkpoint's (tiny models: 224*224, "
                                                "8x8 tokens on Qwen2.5-VL).")
    bench_blind: bool | None = C.field(None, help="Also run each model without images/video (the blind "
                                                  "baseline). None = the runner's default (on).")
    probe_recipe: str = C.field("gasp", help="Probe recipe name or path.")
    train_config: str | None = C.field(None, help="Training config file (TOML/YAML). None = the headline "
                                                    "config (full fine-tuning + vision tower, 16-frame clips) "
                                                    "for the tiny default, the TrainConfig defaults (LoRA, "
                                                    "tower frozen) for a --model.")
    train_steps: int | None = C.field(None, help="Override the training steps (tiny default: 700, "
                                                  "about 5 minutes on 2 CPU threads).")
    train_scene_seed: int | None = C.field(None, help="Seed of the synthetic training scenes (None = seed).")
    heldout_scene_seed: int | None = C.field(None, help="Seed of the synthetic held-out scenes (None = seed + 1000).")
    train_minutes: float | None = C.field(None, help="Wall-clock cap of the training stage (None = no cap).")
    train_threads: int | None = C.field(None, help="Torch threads of the training stage (None = min(2, cores)).")
    quick: bool = C.field(False, help="A ~1 minute first look: fewer scenes, frames and steps (= preset 'quick').")
    preset: str = C.field("default", help="default | quick (a ~1 minute first look) | headline (the toy "
                                          "GASP headline of docs/training.md: 96 + 16 scenes, 10 min training).")

    def __post_init__(self) -> None:
        if self.bench_scorer not in (None, "generate", "likelihood"):
            raise ConfigError(f"bench_scorer: expected generate or likelihood, got {self.bench_scorer!r}")
        if self.preset not in PRESETS:
            raise ConfigError(f"preset: expected one of {', '.join(PRESETS)}, got {self.preset!r}")

    def resolved(self) -> "LoopConfig":
        """Apply the preset (``quick`` is preset 'quick') to the fields left at their defaults."""
        preset = "quick" if self.quick else self.preset
        if preset == "default":
            return self
        d = asdict(self)
        base = LoopConfig()
        for k, v in PRESETS[preset].items():
            if d[k] == getattr(base, k):
                d[k] = v
        d["preset"], d["quick"] = preset, preset == "quick"
        return C.from_dict(LoopConfig, d)


@dataclass
class LoopResult:
    out: Path
    stages: dict[str, dict]
    report: Path | None
    headline: dict | None = None


@dataclass
class Stage:
    """One step of the loop: a name (also its folder under ``OUT``) and the call that runs it."""

    name: str
    run: Callable[[], Any]


def _run_stages(stages: list[Stage], log: Callable[[str], None]) -> dict[str, dict]:
    timings: dict[str, dict] = {}
    for st in stages:
        t0 = time.perf_counter()
        log(f"[{st.name}] ...")
        st.run()
        dt = time.perf_counter() - t0
        timings[st.name] = {"seconds": round(dt, 2)}
        log(f"[{st.name}] done in {dt:.1f}s")
    return timings


def _train_config(cfg: LoopConfig) -> tuple[Any, dict[str, Any]]:
    """(training config, overrides) of the loop's training stage, validated before any stage runs."""
    from gaspprobe.training.trainer import resolve_config

    over: dict[str, Any] = {"seed": cfg.seed}
    train_config: Any = cfg.train_config
    if train_config is None and cfg.model is None:
        # The tiny default trains what docs/training.md found best on the validation split of the
        # training scenes (full LLM + the random vision tower, whole-scene clips), for fewer steps
        # than the 10-minute headline so that the whole loop fits in ~10 minutes.
        from gaspprobe.training.headline import HEADLINE_CONFIG

        train_config = {**HEADLINE_CONFIG, "steps": TINY_LOOP_STEPS,
                        "frames_per_clip": min(HEADLINE_CONFIG["frames_per_clip"], cfg.frames)}
        if cfg.preset == "paper":
            # chosen on the validation split of the training scenes (docs/training.md, "The paper
            # protocol at toy scale"): short clips drawn from a +-16 frame window, so training sees
            # the large gaps the probe measures (up to 24), at 16x16 tokens a step stays cheap
            train_config.update(PAPER_TRAIN)
    if cfg.train_steps is not None:
        over["steps"] = cfg.train_steps
    if cfg.train_minutes:
        over["time_limit_s"] = cfg.train_minutes * 60
    if cfg.train_threads:
        over["threads"] = cfg.train_threads
    if cfg.max_pixels:
        over["max_pixels"] = cfg.max_pixels
    tcfg = resolve_config(train_config, **over)
    if tcfg.threads == 0:  # training is the one stage that gains from several threads
        over["threads"] = min(2, os.cpu_count() or 1)
    return train_config, over


def loop(out: str | Path, config: LoopConfig | None = None, *, log: Callable[[str], None] = print,
         **overrides: Any) -> LoopResult:
    """Run (or resume) the whole loop into ``out``. ``overrides`` are :class:`LoopConfig` fields."""
    from gaspprobe.benchmarking.runner import run as bench_run
    from gaspprobe.probing.recipe import load_recipe
    from gaspprobe.probing.run import probe
    from gaspprobe.reporting.report import report
    from gaspprobe.runs import open_run
    from gaspprobe.training.trainer import train

    cfg = config if config is not None else LoopConfig()
    if overrides:
        cfg = C.replace(cfg, **overrides)
    cfg = cfg.resolved()
    out = Path(out)
    # Validate every config before the first stage runs: a typo must not cost minutes of work.
    load_recipe(cfg.probe_recipe)
    train_config, train_over = _train_config(cfg)
    plan = _bench_plan(cfg, out)
    # Rendering, probing and generation on small tensors gain little from intra-op threads, and
    # two-thread torch thrashes badly when anything else runs on a 2-core machine (17x slower
    # scene rendering was measured here): one thread for every stage but training.
    import torch

    torch.set_num_threads(1)
    train_seed = cfg.seed if cfg.train_scene_seed is None else cfg.train_scene_seed
    heldout_seed = cfg.seed + 1000 if cfg.heldout_scene_seed is None else cfg.heldout_scene_seed
    train_scenes = Path(cfg.scenes) if cfg.scenes else out / "scenes" / "train"
    heldout = Path(cfg.heldout) if cfg.heldout else out / "scenes" / "heldout"
    base_model = cfg.model or str(out / "models" / "base")
    gasp_dir = out / "train" / "gasp"
    gasp_model = str(gasp_dir / "model")
    runs: list[Path] = [out / "probe" / "base", gasp_dir, out / "probe" / "gasp"]

    def scenes(dest: Path, n: int, seed: int) -> Callable[[], Any]:
        from gaspprobe.scenes import make_scenes

        # make_scenes owns its folder (run kernel): same arguments -> no-op; interrupted -> keeps
        # its finished scenes; another config -> replaces the stale ones.
        # the video camera is a knob of its own; the default 'arc' passes nothing, so the default
        # loop's scenes (and their manifests) are exactly those of before
        cam = {} if cfg.camera == "arc" else {"camera": cfg.camera, "fps": cfg.scene_fps}
        return lambda: make_scenes(dest, n_scenes=n, frames=cfg.frames, size=cfg.size, seed=seed, **cam)

    def tiny() -> Any:
        from gaspprobe.models import build_tiny

        return build_tiny(cfg.arch, out / "models" / "base", seed=cfg.seed)

    def trained() -> Any:
        res = train(base_model, train_scenes, gasp_dir, train_config, resume=True, label="gasp", **train_over)
        torch.set_num_threads(1)  # the trainer set its own thread count
        return res

    pix_probe = {"max_pixels": cfg.max_pixels} if cfg.max_pixels else {}
    stages: list[Stage] = []
    if not cfg.scenes:
        stages.append(Stage("scenes/train", scenes(train_scenes, cfg.n_train_scenes, train_seed)))
    if not cfg.heldout:
        stages.append(Stage("scenes/heldout", scenes(heldout, cfg.n_heldout_scenes, heldout_seed)))
    if not cfg.model:
        stages.append(Stage("models/base", tiny))
    stages += [
        Stage("probe/base", lambda: probe(base_model, heldout, cfg.probe_recipe, out=out / "probe" / "base",
                                          label="base", **pix_probe)),
        # resume=True: a loop killed mid-training continues from the newest checkpoint (bitwise the
        # same weights); a finished run with the same config is a no-op.
        Stage("train/gasp", trained),
        Stage("probe/gasp", lambda: probe(gasp_model, heldout, cfg.probe_recipe, out=out / "probe" / "gasp",
                                          label="gasp", **pix_probe)),
    ]
    scorer = cfg.bench_scorer or ("generate" if cfg.model else "likelihood")
    for name, data, extra in plan:
        extra = {**extra, "scorer": scorer}
        if cfg.max_pixels:
            extra["pixels"] = {"max_pixels": cfg.max_pixels}
        if cfg.bench_blind is not None:
            extra["blind"] = cfg.bench_blind
        if name.startswith("synthetic_"):
            stages.append(Stage(f"bench/data/{name}", _synthesize(heldout, data, name, cfg.seed)))
        for label, model in (("base", base_model), ("gasp", gasp_model)):
            run_dir = out / "bench" / name / label
            stages.append(Stage(f"bench/{name}/{label}", _bench(bench_run, model, name, data, run_dir, label,
                                                                cfg.bench_limit, extra)))
            runs.append(run_dir)
    stages.append(Stage("report", lambda: report(runs, out / "report")))

    with open_run(out, "loop", cfg, publish="incremental", on_change="refuse") as lrun:
        lrun.start()
        timings = _run_stages(stages, log)
        headline = _headline(out, cfg) if cfg.preset in ("headline", "paper") else None
        lrun.complete(stages=timings, runs=[str(r) for r in runs])
    rep = out / "report" / "report.html"
    return LoopResult(out=out, stages=timings, report=rep if rep.exists() else None, headline=headline)


def _synthesize(heldout: Path, data_dir: Path, name: str, seed: int) -> Callable[[], Any]:
    from gaspprobe.benchmarking.synthetic import synthesize

    fmt = SYNTHETIC_FORMATS[name]
    return lambda: synthesize(heldout, data_dir, format=fmt, seed=seed)


def _bench(bench_run, model, name, data, run_dir, label, limit, extra) -> Callable[[], Any]:
    return lambda: bench_run(model, name, data, run_dir, limit=limit, label=label, **extra)


#: The synthetic benchmarks the loop can write from its held-out scenes, and their formats.
SYNTHETIC_FORMATS = {"synthetic_vsi": "vsibench", "synthetic_allangles": "allangles", "synthetic_blink": "blink"}


def _bench_plan(cfg: LoopConfig, out: Path) -> list[tuple[str, Path, dict]]:
    """(benchmark name, data path, runner options) for every benchmark of the loop."""
    plan = []
    for name in cfg.benchmarks:
        if name.startswith("synthetic_"):
            if name not in SYNTHETIC_FORMATS:
                raise ConfigError(f"benchmarks: unknown synthetic benchmark {name!r}; "
                                  f"known: {', '.join(SYNTHETIC_FORMATS)}")
            plan.append((name, out / "bench" / "data" / name, {"frames": cfg.bench_frames}))
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


def _headline(out: Path, cfg: LoopConfig) -> dict:
    """``OUT/headline.json`` + ``.md``: base vs GASP on the held-out scenes against the targets.

    Every number is read from the two probe runs' typed summaries (:mod:`gaspprobe.tables`; the
    probe computes them, nothing is re-derived here). The peak is chosen at the recipe's headline
    tolerance (r=0 for ``gasp``, PCK@2patch for ``paper``), shown with its chance level."""
    from dataclasses import asdict as _asdict

    from gaspprobe.tables import read_probe_summary

    base = read_probe_summary(out / "probe" / "base")
    gasp = read_probe_summary(out / "probe" / "gasp")
    train_m = io.read_manifest(out / "train" / "gasp")
    keep = ("peak_layer", "peak_accuracy", "chance", "robustness", "robustness_at_max_gap", "robustness_reason",
            "gap_balanced_accuracy", "layer_mean_accuracy", "accuracy_by_gap", "normalized_by_gap", "n_matches",
            "headline_r", "patch_unit")

    def pick(s) -> dict:
        d = {k: v for k, v in _asdict(s).items() if k in keep}
        d["accuracy"] = s.accuracy
        d["peak_rho"] = s.peak_rho
        return d

    res = {
        "preset": cfg.preset, "recipe": cfg.probe_recipe, "base": pick(base), "gasp": pick(gasp),
        "targets": {"peak_accuracy": TARGET_PEAK, "robustness": TARGET_ROBUSTNESS},
        "passed": {"peak_accuracy": (gasp.peak_accuracy or 0) >= TARGET_PEAK,
                   "robustness": (gasp.robustness or 0) >= TARGET_ROBUSTNESS},
        "train": {"summary": train_m.get("summary")},
        "data": {"n_train_scenes": cfg.n_train_scenes, "n_heldout_scenes": cfg.n_heldout_scenes,
                 "frames": cfg.frames, "size": cfg.size, "camera": cfg.camera, "max_pixels": cfg.max_pixels},
    }
    io.atomic_write_json(out / "headline.json", res)
    io.atomic_write_text(out / "headline.md", _headline_markdown(res))
    return res


def _headline_markdown(r: dict) -> str:
    b, g = r["base"], r["gasp"]
    f = lambda v: "n/a" if v is None or v != v else f"{v:.3f}"  # noqa: E731
    hr = b.get("headline_r", 0)
    what = f"PCK@{hr}patch" if hr else "exact-token accuracy (r=0)"
    gaps = list(b.get("accuracy_by_gap") or {})
    layers = list((b.get("accuracy") or {}).get(f"r{hr}") or {})
    acc = lambda s, k: ((s.get("accuracy") or {}).get(f"r{hr}") or {}).get(k)  # noqa: E731
    return "\n".join([
        f"# GASP headline (preset {r['preset']}, held-out scenes, recipe {r['recipe']}, raw hidden states)", "",
        "| | base | GASP | target |", "|---|---|---|---|",
        f"| peak-layer {what} | {f(b['peak_accuracy'])} ({b['peak_layer']}) | "
        f"{f(g['peak_accuracy'])} ({g['peak_layer']}) | >= {TARGET_PEAK} |",
        f"| chance at that tolerance | {f(b['chance'])} | {f(g['chance'])} | |",
        f"| temporal robustness (mean normalized PCK) | {f(b['robustness'])} | {f(g['robustness'])} | "
        f">= {TARGET_ROBUSTNESS} |",
        f"| PCK at the largest gap / PCK at gap 1 | {f(b['robustness_at_max_gap'])} | "
        f"{f(g['robustness_at_max_gap'])} | |",
        f"| confidence-accuracy Spearman at the peak | {f(b['peak_rho'])} | {f(g['peak_rho'])} | |", "",
        "| gap | " + " | ".join(gaps) + " |", "|---|" + "---|" * len(gaps),
        "| base | " + " | ".join(f(b["accuracy_by_gap"].get(k)) for k in gaps) + " |",
        "| GASP | " + " | ".join(f((g.get("accuracy_by_gap") or {}).get(k)) for k in gaps) + " |", "",
        "| layer | " + " | ".join(layers) + " |", "|---|" + "---|" * len(layers),
        "| base | " + " | ".join(f(acc(b, k)) for k in layers) + " |",
        "| GASP | " + " | ".join(f(acc(g, k)) for k in layers) + " |", "",
        f"Data: {r['data']}.", "",
    ])
