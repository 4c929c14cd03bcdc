"""Capture speed and memory: streamed per-layer capture vs the bare forward pass, per tiny family.

    python benchmarks/perf/capture.py [--quick] [--device cuda] [--mid] [--families qwen2_5_vl,llava_next_video]
    python benchmarks/perf/capture.py --tokens     # image tokens per frame / clip at REAL settings
    python benchmarks/perf/capture.py --memory     # peak capture memory vs frames, images vs video

``run(quick=False, device="cpu") -> dict`` (used by ``gaspprobe perf``). Figures, all ratios or
rates measured in this one run (median of repeats after warm-up, one torch thread on CPU):

* ``overhead_ratio``: worst family's ``capture / bare`` wall time (best of the repeats;
  ``overhead_ratio_median`` per family too), where *bare* is
  ``model(**inputs, use_cache=False, logits_to_keep=1)`` (the cheapest complete forward) and
  *capture* is ``list``-ing :meth:`capture` with every layer (vision + all LLM layers), each layer
  dropped by the consumer; both on the same prepared inputs (the processor is timed separately,
  ``processor_ms``). Target <= 1.05-1.10.
* ``api_overhead_ratio``: the same with the processor included on both sides (``capture(frames)``
  vs ``prepare + forward``).
* ``run_layers_ratio``: the callback form (no worker thread).
* memory (CUDA only: ``torch.cuda.max_memory_allocated`` is exact; on CPU there is no reliable
  per-tensor peak, see ``memory_note``): ``peak_extra_bytes`` = capture peak - bare peak, against
  ``layer_bytes`` = one layer's image-token features; ``hidden_states_extra_bytes`` for the naive
  ``output_hidden_states=True`` forward, for reference.
* ``--mid`` (``mid=True``): the same ratios on a mid-size random Qwen2.5-VL (~0.2 B parameters),
  where the forward is no longer dominated by kernel-launch / Python overhead.
* ``mode_ratio``: ``capture / bare`` for each other capture mode the family can hook (attention,
  q, k, v, q_rope, k_rope; all LLM layers).
* scaling: ``per_layer_ms`` (capture time when stopping after k layers, k = 1..L) and the ratio at
  F = 2, 4, 8, 16 frames.
* ``video`` (families with a video path, where torchvision imports): per F = 4, 8, 16 frames the
  tokens, bare forward and capture / bare of the same frames fed as images and as ONE video
  (``modality="video"``); the peak memory of a capture: on CUDA ``max_memory_allocated``, on
  Linux CPUs the process's peak resident set during the capture above what it held before
  (``VmHWM`` - ``VmRSS`` after resetting the peak through ``/proc/self/clear_refs``; allocator
  reuse makes it approximate, so compare within one run).
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import numpy as np


def _sync(device: str) -> None:
    from gaspprobe.perf import sync

    sync(device)


def _median_ms(fn, device: str, repeats: int, warmup: int = 2) -> float:
    from gaspprobe.perf import median_seconds

    return 1e3 * median_seconds(fn, repeats, warmup=warmup, device=device)


def _paired_ms(fa, fb, device: str, repeats: int, warmup: int = 2) -> tuple[float, float, float, float]:
    """(median a, median b, min a, min b) in ms of ``fa`` and ``fb`` timed alternately (a, b, a, b,
    ...), so that load from other processes hits both alike. The minimum is the least noisy estimate
    of a function's own cost on a shared machine; the median is reported beside it."""
    for _ in range(warmup):
        fa()
        fb()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, ts in ((fa, ta), (fb, tb)):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ta), 1e3 * statistics.median(tb), 1e3 * min(ta), 1e3 * min(tb)


def _bare(ad, inputs):
    import torch

    with torch.inference_mode():
        try:
            return ad.model(**inputs, use_cache=False, logits_to_keep=1)
        except TypeError:  # pragma: no cover - a family without logits_to_keep
            return ad.model(**inputs, use_cache=False)


def _consume(it) -> int:
    n = 0
    for cap in it:
        n += cap.feats.shape[0] if cap.feats is not None else cap.query.shape[0]
        del cap  # drop each layer before asking for the next
    return n


def _frames(F: int, size: int = 448, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (F, size, size, 3), dtype=np.uint8)


def _family(arch: str, device: str, quick: bool) -> dict[str, Any]:
    import torch

    from gaspprobe.models import load
    from gaspprobe.models.testing import tiny_model_dir

    ad = load(tiny_model_dir(arch), dtype="float32", device=device)
    reps = 5 if quick else 30
    F = 8
    fr = _frames(F)
    prepared = ad.prepare_capture(fr)
    inputs, grid, _ = prepared
    out: dict[str, Any] = {"frames": F, "tokens_per_frame": grid.tokens_per_frame,
                           "seq_len": int(inputs["input_ids"].shape[1]), "layers": ad.num_layers}
    bare, cap, bare_min, cap_min = _paired_ms(lambda: _bare(ad, inputs),
                                              lambda: _consume(ad.capture(None, prepared=prepared)), device, reps)
    _, _, bare2_min, cb_min = _paired_ms(lambda: _bare(ad, inputs),
                                         lambda: ad.run_layers(None, lambda c: None, prepared=prepared), device, reps)
    proc = _median_ms(lambda: ad.prepare_capture(fr), device, reps)
    _, _, api_bare_min, api_cap_min = _paired_ms(lambda: _bare(ad, ad.prepare_capture(fr)[0]),
                                                 lambda: _consume(ad.capture(fr)), device, reps)
    out.update(bare_ms=bare, capture_ms=cap, bare_min_ms=bare_min, capture_min_ms=cap_min, processor_ms=proc,
               overhead_ratio=cap_min / bare_min, overhead_ratio_median=cap / bare, extra_ms=cap_min - bare_min,
               run_layers_ratio=cb_min / bare2_min, api_overhead_ratio=api_cap_min / api_bare_min)
    # every capture mode the model can hook (all LLM layers) against the same bare forward
    out["mode_ratio"] = {}
    for m in ad.capture_modes():
        if m == "hidden":
            continue
        _, _, b_min, m_min = _paired_ms(lambda: _bare(ad, inputs),
                                        lambda m=m: _consume(ad.capture(None, prepared=prepared, mode=m)), device,
                                        max(3, reps // 2))
        out["mode_ratio"][m] = round(m_min / b_min, 3)
    # scaling with the number of layers captured (early stop after layer k)
    names = ad.layer_names()
    out["per_layer_ms"] = [round(_median_ms(lambda k=k: _consume(ad.capture(None, prepared=prepared, layers=names[:k])),
                                            device, max(3, reps // 3)), 3) for k in range(1, len(names) + 1)]
    # scaling with frames
    scale = {}
    for Fk in ((2, 8) if quick else (2, 4, 8, 16)):
        p = ad.prepare_capture(_frames(Fk, seed=Fk))
        _, _, b, c = _paired_ms(lambda: _bare(ad, p[0]), lambda: _consume(ad.capture(None, prepared=p)), device,
                                max(3, reps // 2))
        scale[str(Fk)] = {"bare_ms": round(b, 3), "capture_ms": round(c, 3), "ratio": round(c / b, 4)}
    out["frames_scaling"] = scale
    out["video"] = _video_vs_images(ad, device, quick, reps)
    # memory
    D = ad.hidden_size
    out["layer_bytes"] = F * grid.tokens_per_frame * D * 4
    if device.startswith("cuda"):
        def peak(fn) -> int:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fn()
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - base

        def hidden_states():
            with torch.inference_mode():
                ad.model(**inputs, use_cache=False, logits_to_keep=1, output_hidden_states=True)

        pb = peak(lambda: _bare(ad, inputs))
        pc = peak(lambda: _consume(ad.capture(None, prepared=prepared)))
        pr = peak(lambda: ad.run_layers(None, lambda c: None, prepared=prepared))
        ph = peak(hidden_states)
        out.update(bare_peak_bytes=pb, capture_peak_bytes=pc, run_layers_peak_bytes=pr, hidden_states_peak_bytes=ph,
                   peak_extra_bytes=pc - pb, run_layers_extra_bytes=pr - pb, hidden_states_extra_bytes=ph - pb,
                   peak_extra_layers=(pc - pb) / out["layer_bytes"])
    return out


def _cpu_peak_extra(fn) -> int | None:
    """Peak resident memory of ``fn()`` above what the process held before (Linux; None elsewhere)."""
    import gc

    def status(key: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        raise KeyError(key)

    try:
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak (VmHWM) to the current resident set
        before = status("VmRSS")
        fn()
        return status("VmHWM") - before
    except (OSError, KeyError):
        return None


def _memory_child(arch: str, F: int, modality: str) -> dict:
    """In a fresh process: the peak resident memory of ONE capture (all layers) above what the
    process held after loading the model and preparing the inputs (Linux ``VmHWM``)."""
    import torch

    from gaspprobe.models import load
    from gaspprobe.models.testing import tiny_model_dir

    torch.set_num_threads(1)
    ad = load(tiny_model_dir(arch), dtype="float32")
    p = ad.prepare_capture(_frames(F, seed=100 + F), modality=modality)
    tok = ad.video_seq_token_id if modality == "video" else ad.image_token_id
    return {"tokens": int((p[0]["input_ids"][0] == tok).sum()),
            "peak_extra_mb": round((_cpu_peak_extra(lambda: _consume(ad.capture(None, prepared=p))) or 0) / 2**20, 2)}


def memory_table(families=("qwen2_5_vl", "llava_next_video"), frames=(4, 8, 16)) -> list[dict]:
    """Peak capture memory vs frames per clip, images vs video, each in a fresh subprocess (so the
    allocator's cache from an earlier measurement cannot hide the peak)."""
    import json
    import os
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve()
    rows = []
    for arch in families:
        for F in frames:
            row = {"family": arch, "frames": F}
            for mod in ("images", "video"):
                code = (f"import json,sys; sys.path.insert(0, {str(here.parent)!r}); import capture as C; "
                        f"print('RESULT', json.dumps(C._memory_child({arch!r}, {F}, {mod!r})))")
                env = {**os.environ, "PYTHONPATH": str(here.parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                       "OMP_NUM_THREADS": "1"}
                r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
                line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
                row[mod] = json.loads(line[-1][7:]) if line else {"error": (r.stderr or "")[-200:]}
            rows.append(row)
    return rows


def _video_vs_images(ad, device: str, quick: bool, reps: int) -> dict[str, Any] | None:
    """Images vs video, the same frames: tokens, bare forward, capture / bare (and CUDA peaks)."""
    import torch

    if "video" not in ad.modalities() or getattr(ad.processor, "video_processor", None) is None:
        return None
    out: dict[str, Any] = {}
    for Fk in ((4, 8) if quick else (4, 8, 16)):
        fr = _frames(Fk, seed=100 + Fk)
        row: dict[str, Any] = {}
        for mod in ("images", "video"):
            p = ad.prepare_capture(fr, modality=mod)
            _, _, b, c = _paired_ms(lambda: _bare(ad, p[0]), lambda: _consume(ad.capture(None, prepared=p)),
                                    device, max(3, reps // 3))
            tok = ad.video_seq_token_id if mod == "video" else ad.image_token_id
            row[mod] = {"tokens": int((p[0]["input_ids"][0] == tok).sum()), "bare_ms": round(b, 3),
                        "capture_ratio": round(c / b, 4)}
            if device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                base = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
                _consume(ad.capture(None, prepared=p))
                torch.cuda.synchronize()
                row[mod]["capture_peak_bytes"] = torch.cuda.max_memory_allocated() - base
            else:
                extra = _cpu_peak_extra(lambda: _consume(ad.capture(None, prepared=p)))
                if extra is not None:
                    row[mod]["capture_peak_rss_bytes"] = extra
        row["video_tokens_ratio"] = round(row["video"]["tokens"] / row["images"]["tokens"], 4)
        row["video_bare_ratio"] = round(row["video"]["bare_ms"] / row["images"]["bare_ms"], 4)
        out[str(Fk)] = row
    return out


def _mid_qwen(device: str):
    """A mid-size random Qwen2.5-VL (LLM 1024 wide, 12 layers; ~0.2 B parameters) with the tiny
    model's tokenizer/processor: shows the overhead once the forward is not launch-bound."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from gaspprobe.models import load
    from gaspprobe.models.qwen_vl import Qwen2_5_VLAdapter
    from gaspprobe.models.testing import tiny_model_dir

    tiny = load(tiny_model_dir("qwen2_5_vl"), dtype="float32")
    c = tiny.model.config
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=c.text_config.vocab_size, hidden_size=1024, intermediate_size=4096,
                         num_hidden_layers=12, num_attention_heads=16, num_key_value_heads=4,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [8, 12, 12]},
                         bos_token_id=None, eos_token_id=c.text_config.eos_token_id, pad_token_id=c.text_config.pad_token_id),
        vision_config=dict(depth=4, hidden_size=256, intermediate_size=1024, num_heads=4, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, window_size=112, out_hidden_size=1024,
                           fullatt_block_indexes=[3]),
        image_token_id=c.image_token_id, video_token_id=c.video_token_id,
        vision_start_token_id=c.vision_start_token_id, vision_end_token_id=c.vision_end_token_id)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = Qwen2_5_VLForConditionalGeneration(cfg).to(device=device, dtype=dtype).eval()
    return Qwen2_5_VLAdapter(model, tiny.processor, model_id="mid-qwen2_5_vl")


def _mid(device: str, quick: bool) -> dict[str, Any]:
    ad = _mid_qwen(device)
    reps = 5 if quick else 20
    out = {"parameters": sum(p.numel() for p in ad.model.parameters()), "layers": ad.num_layers}
    for F in (4, 16):
        p = ad.prepare_capture(_frames(F, seed=F))
        bm, cm, b, c = _paired_ms(lambda: _bare(ad, p[0]), lambda: _consume(ad.capture(None, prepared=p)), device, reps)
        _, _, b2, cb = _paired_ms(lambda: _bare(ad, p[0]), lambda: ad.run_layers(None, lambda c: None, prepared=p),
                                  device, reps)
        out[f"F{F}"] = {"bare_ms": round(b, 3), "capture_ms": round(c, 3), "ratio": round(c / b, 4),
                        "ratio_median": round(cm / bm, 4), "run_layers_ratio": round(cb / b2, 4),
                        "seq_len": int(p[0]["input_ids"].shape[1])}
    return out


def run(quick: bool = False, device: str = "cpu", mid: bool = False, families: list[str] | None = None) -> dict:
    """Measure every registered family's tiny model (or ``families``); returns the figures (see module docstring)."""
    import torch

    from gaspprobe.models import supported

    if not device.startswith("cuda"):
        torch.set_num_threads(1)
    from transformers.utils import logging

    logging.disable_progress_bar()
    fams = {arch: _family(arch, device, quick) for arch in (families or supported())}
    res: dict[str, Any] = {
        "overhead_ratio": max(f["overhead_ratio"] for f in fams.values()),
        "api_overhead_ratio": max(f["api_overhead_ratio"] for f in fams.values()),
        "run_layers_ratio": max(f["run_layers_ratio"] for f in fams.values()),
        "families": fams,
    }
    if mid:
        res["mid_qwen2_5_vl"] = _mid(device, quick)
    if device.startswith("cuda"):
        res["peak_extra_layers"] = max(f["peak_extra_layers"] for f in fams.values())
    else:
        res["memory_note"] = ("CPU: no exact peak of torch allocations; run with --device cuda for "
                              "max_memory_allocated figures")
    return res


def _print(res: dict) -> None:
    fams = res["families"]
    print(f"{'family':17s} {'F':>3s} {'tok/f':>5s} {'bare ms':>8s} {'capt ms':>8s} {'ratio':>6s} {'(med)':>6s} "
          f"{'cb':>6s} {'api':>6s} {'proc ms':>8s}  per-layer ms (vision, llm.0..)")
    for arch, f in fams.items():
        print(f"{arch:17s} {f['frames']:3d} {f['tokens_per_frame']:5d} {f['bare_min_ms']:8.2f} {f['capture_min_ms']:8.2f} "
              f"{f['overhead_ratio']:6.3f} {f['overhead_ratio_median']:6.3f} {f['run_layers_ratio']:6.3f} "
              f"{f['api_overhead_ratio']:6.3f} {f['processor_ms']:8.2f}  {f['per_layer_ms']}")
    print("capture modes (capture/bare, all LLM layers):", {a: f["mode_ratio"] for a, f in fams.items()})
    print("frames scaling (capture/bare):", {a: {k: v["ratio"] for k, v in f["frames_scaling"].items()}
                                             for a, f in fams.items()})
    for arch, f in fams.items():
        for Fk, v in (f.get("video") or {}).items():
            mem = {m: v[m].get("capture_peak_bytes", v[m].get("capture_peak_rss_bytes")) for m in ("images", "video")}
            mtxt = " | ".join(f"{m} peak +{b / 2**20:.1f} MiB" for m, b in mem.items() if b is not None)
            print(f"{arch:17s} F={Fk:>2s} images {v['images']['tokens']:6d} tok {v['images']['bare_ms']:8.2f} ms "
                  f"capture/bare {v['images']['capture_ratio']:.3f} | video {v['video']['tokens']:6d} tok "
                  f"{v['video']['bare_ms']:8.2f} ms capture/bare {v['video']['capture_ratio']:.3f}   {mtxt}")
    if "peak_extra_layers" in res:
        for arch, f in fams.items():
            print(f"{arch:17s} peak bare {f['bare_peak_bytes']/2**20:8.2f} MiB, capture +{f['peak_extra_bytes']/2**10:8.1f} KiB "
                  f"(callback +{f['run_layers_extra_bytes']/2**10:.1f} KiB), one layer {f['layer_bytes']/2**10:.1f} KiB, "
                  f"output_hidden_states +{f['hidden_states_extra_bytes']/2**10:.1f} KiB")
    print({k: v for k, v in res.items() if k != "families"})


def token_table() -> list[dict]:
    """Image tokens per frame and per clip of every registered family at its real checkpoints'
    processor settings (:func:`gaspprobe.models.testing.real_adapter`; runs the processors only).
    The table in ``docs/adding_a_model.md`` is this output."""
    from gaspprobe.models.testing import real_adapter, real_settings

    rows = []
    for arch, ck in real_settings():
        ad = real_adapter(arch, ck)
        row = {"family": arch, "setting": ck or "(tiny = real geometry)"}
        for H, W in ((448, 448), (480, 640), (968, 1296)):
            row[f"{W}x{H}"] = ad.image_tokens((H, W), 1)
        row["8 x 1296x968"] = ad.image_tokens((968, 1296), 8)
        row["32 x 640x480"] = ad.image_tokens((480, 640), 32)
        vid = "video" in ad.modalities() and getattr(ad.processor, "video_processor", None) is not None
        row["32 x 640x480 as video"] = ad.image_tokens((480, 640), 32, modality="video") if vid else "-"
        rows.append(row)
    return rows


if __name__ == "__main__" and "--memory" in sys.argv:
    print("| family | frames | image tokens | peak MiB (images) | video tokens | peak MiB (video) |")
    print("|---|---|---|---|---|---|")
    for r in memory_table():
        i, v = r["images"], r["video"]
        print(f"| {r['family']} | {r['frames']} | {i.get('tokens')} | {i.get('peak_extra_mb')} | {v.get('tokens')} | "
              f"{v.get('peak_extra_mb')} |")
elif __name__ == "__main__" and "--tokens" in sys.argv:
    table = token_table()
    cols = list(table[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in table:
        print("| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in r.values()) + " |")
elif __name__ == "__main__":
    dev = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu"
    fam = sys.argv[sys.argv.index("--families") + 1].split(",") if "--families" in sys.argv else None
    _print(run(quick="--quick" in sys.argv, device=dev, mid="--mid" in sys.argv, families=fam))
