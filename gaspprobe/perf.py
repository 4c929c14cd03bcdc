"""`gaspprobe perf`: one table of every speed and memory figure, each a ratio measured in one run.

The measurements live in ``benchmarks/perf/<area>.py`` (each exposes ``run(quick=False,
device="cpu") -> dict``); this module finds them, runs them, attaches each figure's target and a
pass/fail mark, and writes ``perf.json`` + ``perf.md``. Targets are declared here, in one place,
so that every change can be judged against the same numbers.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gaspprobe.errors import GaspError

# key (as "<area>.<figure>") -> (comparison, target, what it means). Keys a benchmark returns but that are
# not listed here are reported without a target.
TARGETS: dict[str, tuple[str, float, str]] = {
    "scenes.render_fps_448": (">=", 20.0, "render frames/s at 448x448 (issue floor: 10)"),
    "scenes.gt_matches_per_s": (">=", 1e6, "ground-truth candidate patch matches per second"),
    "capture.overhead_ratio": ("<=", 1.05, "capture wall time / bare forward wall time (worst family)"),
    "probe.overhead_ratio": ("<=", 1.10, "probe wall time / bare forward wall time (worst family)"),
    "probe.own_work_fraction": ("<=", 0.10, "probe's own work (GT + matching + depth) / forward time"),
    "probe.naive_speed_ratio": (">=", 1.0, "naive (output_hidden_states + sklearn NN) time / probe time"),
    "probe.naive_memory_ratio": (">=", 1.0, "naive peak memory / probe peak memory"),
    "train.gasp_step_ratio": ("<=", 1.3, "GASP step / plain LoRA forward+backward"),
    "bench.batched_speedup": (">=", 1.0, "samples/s batched / samples/s one at a time"),
    "bench.resume_noop_s": ("<=", 1.0, "wall time of a resumed run with nothing left to do (s)"),
}

AREAS = ("scenes", "capture", "probe", "train", "bench")


@dataclass
class Figure:
    key: str
    value: float | None
    target: str = ""
    passed: bool | None = None
    note: str = ""


def sync(device: str) -> None:
    """Wait for queued CUDA work, so a wall-clock reading covers it (no-op on CPU)."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], Any], repeats: int, *, warmup: int = 1, device: str = "cpu") -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls: the one timing
    rule every script under ``benchmarks/perf`` uses."""
    for _ in range(warmup):
        fn()
    sync(device)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def perf_dir() -> Path:
    """``benchmarks/perf`` of the source checkout (perf needs a checkout, not a wheel)."""
    d = Path(__file__).resolve().parents[1] / "benchmarks" / "perf"
    if not d.is_dir():
        raise GaspError(f"benchmarks/perf not found beside the package ({d}); run from a source checkout")
    return d


def _load(area: str) -> Callable[..., dict] | None:
    p = perf_dir() / f"{area}.py"
    if not p.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"gaspprobe_perf_{area}", p)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return getattr(mod, "run", None)


def _flatten(prefix: str, d: Any, out: dict[str, Any]) -> None:
    if isinstance(d, dict):
        for k, v in d.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = d


def judge(key: str, value: Any) -> Figure:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return Figure(key, None, note=str(value))
    v = float(value)
    if key not in TARGETS:
        return Figure(key, v)
    op, target, _ = TARGETS[key]
    ok = (v >= target) if op == ">=" else (v <= target)
    if math.isnan(v):
        ok = None
    return Figure(key, v, f"{op} {target:g}", ok)


def run_perf(areas: tuple[str, ...] = AREAS, *, quick: bool = False, device: str = "cpu",
             progress: Callable[[str], None] | None = None) -> dict:
    """Run the perf benchmarks of ``areas`` and return ``{"figures": [...], "raw": {...}, ...}``."""
    import torch

    torch.set_num_threads(1)  # ratios are taken on one thread: stable on a shared 2-core box
    raw: dict[str, Any] = {}
    figures: list[Figure] = []
    for area in areas:
        fn = _load(area)
        if fn is None:
            raw[area] = {"error": "no benchmark script"}
            continue
        if progress:
            progress(area)
        kwargs = {"quick": quick}
        if "device" in inspect.signature(fn).parameters:
            kwargs["device"] = device
        t0 = time.perf_counter()
        try:
            res = fn(**kwargs)
        except Exception as e:  # a broken benchmark is reported, not hidden, and the rest still run
            res = {"error": f"{type(e).__name__}: {e}"}
        raw[area] = res
        flat: dict[str, Any] = {}
        _flatten(area, res, flat)
        figures += [judge(k, v) for k, v in flat.items()]
        raw[area + "_wall_s"] = round(time.perf_counter() - t0, 2)
    return {
        "device": device,
        "quick": quick,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch_threads": 1},
        "figures": [f.__dict__ for f in figures],
        "raw": raw,
    }


def to_markdown(result: dict) -> str:
    lines = ["| figure | value | target | pass |", "|---|---|---|---|"]
    for f in result["figures"]:
        v = f["value"]
        vs = f["note"] if v is None else (f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}")
        mark = {True: "yes", False: "NO", None: ""}[f["passed"]]
        lines.append(f"| {f['key']} | {vs} | {f['target']} | {mark} |")
    return "\n".join(lines) + "\n"
