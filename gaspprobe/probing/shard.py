"""Scene sharding across processes (``torchrun`` / ``accelerate launch``): the gather step.

Under a launcher every process runs the same ``gaspprobe probe`` command; :func:`shard_info`
reads the rank and world size from the environment (``RANK``/``WORLD_SIZE``, which torchrun and
accelerate set) and :func:`ensure_dist` starts ``torch.distributed`` (gloo on CPU, nccl on GPUs)
if the launcher has not. Scene i goes to rank ``i % world``. The depth probe's training scenes are
processed first; their per-scene ridge statistics are gathered and summed in scene order
(:func:`merge_ridge`, re-centred on the first scene's shift exactly as one process accumulates
them) before any rank scores a held-out scene. At the end every rank's accumulator is gathered and
merged (:func:`merge_acc`); the table and summary are built from the merged accumulator, so the
correspondence numbers are identical to one process's, and the depth-probe numbers equal them up
to float64 rounding of the re-centring. Only rank 0 writes the run folder.
"""

from __future__ import annotations

import os
from typing import Any

import torch


def shard_info() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment; (0, 1) without one."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0, 1
    return (rank, world) if world > 1 else (0, 1)


def ensure_dist(device: str = "cpu") -> Any:
    """``torch.distributed``, initialised (env:// rendezvous) if the launcher did not."""
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if str(device).startswith("cuda") and torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist


def gather(obj: Any) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    import torch.distributed as dist

    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _cpu(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: _cpu(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_cpu(v) for v in x)
    return x


def ridge_state(stats: Any) -> dict:
    """A RidgeStats as plain CPU tensors (to gather)."""
    return _cpu({"dim": stats.dim, "n": stats.n, "shift": stats.shift, "sy": stats.sy, "sx": stats.sx,
                 "xtx": stats.xtx, "xty": stats.xty})


def merge_ridge(states: list[dict], device: Any = None) -> Any:
    """One RidgeStats from per-scene states in scene order, re-centred on the first shift s0:
    with d = s_k - s0, ``sx += sx_k + n_k d``, ``xtx += xtx_k + sx_k d^T + d sx_k^T + n_k d d^T``,
    ``xty += xty_k + sy_k d`` (sums of (x - s0) from sums of (x - s_k))."""
    from gaspprobe.probing.depth import RidgeStats

    states = [s for s in states if s["n"] > 0]
    out = RidgeStats(states[0]["dim"])
    dev = device if device is not None else "cpu"
    out._alloc(dev)
    out.shift = states[0]["shift"].to(dev)
    for s in states:
        d = (s["shift"].to(dev) - out.shift)
        sx = s["sx"].to(dev)
        out.n += s["n"]
        out.sy += s["sy"]
        out.sx += sx + s["n"] * d
        out.xtx += s["xtx"].to(dev) + torch.outer(sx, d) + torch.outer(d, sx) + s["n"] * torch.outer(d, d)
        out.xty += s["xty"].to(dev) + s["sy"] * d
    return out


def acc_state(acc: Any) -> dict:
    keys = ("n", "hits", "conf", "chance", "gt_n", "layers", "modes_seen", "depth", "n_pairs", "scale")
    return _cpu({k: getattr(acc, k) for k in keys})


def merge_acc(acc: Any, states: list[dict]) -> Any:
    """Fill ``acc`` (a fresh accumulator) with the union of the ranks' states."""
    for k in ("n", "hits", "conf", "chance", "gt_n", "depth"):
        for s in states:
            getattr(acc, k).update(s[k])
    for k in ("layers", "modes_seen"):
        lists = sorted((s[k] for s in states), key=len, reverse=True)  # a full list first: model order
        seen: list = []
        for lst in lists:
            seen += [x for x in lst if x not in seen]
        setattr(acc, k, seen)
    acc.n_pairs = sum(s["n_pairs"] for s in states)
    acc.scale = states[0]["scale"]
    return acc
