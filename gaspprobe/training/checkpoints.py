"""Checkpoints of a GASP run: the exact state to continue from, written atomically.

``RUN/checkpoints/step-000050/state.safetensors`` holds the trainable weights, the optimizer and
scheduler state, every RNG state (torch, CUDA, Python, NumPy) and the data position (clips
consumed). It is written into a hidden ``.step-N.tmp`` folder and renamed, so a kill leaves the
previous checkpoint or the new one. Restoring it into freshly built objects continues bitwise
exactly as an uninterrupted run would on CPU (nothing random happens between checkpoints except
what is saved).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import torch
from torch import nn

from gaspprobe.errors import DataError
from gaspprobe.training.surgery import trainable

CKPT_DIR = "checkpoints"
STATE_FILE = "state.safetensors"


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """``[(step, folder), ...]`` of the complete checkpoints in ``out``, oldest first."""
    d = Path(out) / CKPT_DIR
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        if p.name.startswith("step-") and (p / STATE_FILE).is_file():
            try:
                found.append((int(p.name[5:]), p))
            except ValueError:
                continue
    return sorted(found)


def save_checkpoint(out: Path, step: int, position: int, module: nn.Module, optimizer, scheduler,
                    keep: int) -> Path:
    """Write ``out/checkpoints/step-{step:06d}/state.safetensors`` atomically (temp folder + rename)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for n, p in trainable(module).items():
        tensors[f"param/{n}"] = p.detach().cpu().contiguous()
    osd = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for idx, st in osd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim/{idx}/{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    meta = {
        "step": str(step), "position": str(position),
        "optimizer_groups": json.dumps(osd["param_groups"]),
        "optimizer_scalars": json.dumps(scalars),
        "scheduler": json.dumps(scheduler.state_dict()),
        "python_random": json.dumps(random.getstate()),
        "param_order": json.dumps(list(trainable(module))),
    }
    try:
        import numpy as np

        st = np.random.get_state()
        tensors["rng/numpy"] = torch.from_numpy(st[1].astype("int64"))
        meta["numpy_random"] = json.dumps([st[0], int(st[2]), int(st[3]), float(st[4])])
    except ImportError:  # pragma: no cover
        pass
    root = out / CKPT_DIR
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / STATE_FILE), metadata=meta)
    with open(tmp / STATE_FILE, "rb") as f:
        os.fsync(f.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for s, p in list_checkpoints(out)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def load_checkpoint(path: Path, module: nn.Module, optimizer, scheduler) -> tuple[int, int]:
    """Restore a checkpoint into the live objects; returns (step, data position)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path / STATE_FILE), "pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise DataError(f"unreadable checkpoint ({type(e).__name__})", path=path) from None
    params = trainable(module)
    names = json.loads(meta["param_order"])
    if names != list(params):
        raise DataError("checkpoint does not match this model/config (different trainable parameters)",
                        path=path)
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(tensors[f"param/{n}"].to(p.device, p.dtype))
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim/"):
            _, idx, name = k.split("/", 2)
            state.setdefault(int(idx), {})[name] = v
    for idx, sc in json.loads(meta["optimizer_scalars"]).items():
        state.setdefault(int(idx), {}).update(sc)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["optimizer_groups"])})
    scheduler.load_state_dict(json.loads(meta["scheduler"]))
    torch.set_rng_state(tensors["rng/torch"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng/cuda/"))]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    st = json.loads(meta["python_random"])
    random.setstate((st[0], tuple(st[1]), st[2]))
    if "numpy_random" in meta:
        import numpy as np

        a, pos, gauss, cached = json.loads(meta["numpy_random"])
        np.random.set_state((a, tensors["rng/numpy"].numpy().astype("uint32"), pos, gauss, cached))
    return int(meta["step"]), int(meta["position"])
