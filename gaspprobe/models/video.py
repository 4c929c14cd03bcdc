"""Video input the official way: transformers' own video processors, which need torchvision.

Two things live here:

* :func:`ensure_torchvision` - every transformers video processor is written on
  ``torchvision.transforms.v2``. On a machine where torch and torchvision match, importing it just
  works and this does nothing else. The CPU wheel pairing this project is tested on (torch
  2.13.0+cpu with PyPI's torchvision 0.28.0, a CUDA build) fails at import with "operator
  torchvision::nms does not exist": torchvision registers fake (meta) kernels for its compiled
  ``nms``/``qnms`` ops, whose schemas its missing C++ library would have defined. Defining those
  two schemas (and nothing else) with ``torch.library.Library("torchvision", "DEF")`` lets the
  import finish; the transforms the video processors use are pure torch. gaspprobe never calls
  ``nms``: without the compiled library it would still fail, loudly. No processor is
  re-implemented: this only makes the real ones importable.
* :func:`require_video` - the one-line error when a video path is asked for and cannot run.

How the frames a video token covers are recorded (``TokenGrid.extra["frames"]``, long [T, k]: the
clip frames the k frames of temporal slice t came from) and how the probe measures frame distance
on them is in ``docs/probe.md`` ("Video input").
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading

from gaspprobe.errors import ConfigError

#: ``modality`` values of probe recipes, training configs and bench runs
MODALITIES = ("images", "video")

_LOCK = threading.Lock()
_STATE: dict = {}  # "ok": bool, "why": str, "lib": the torch.library.Library kept alive


def ensure_torchvision() -> bool:
    """Make ``torchvision`` importable for transformers' video processors; True when it is.

    Cheap after the first call. Returns False (reason in :func:`torchvision_problem`) when
    torchvision is not installed or fails for any other reason."""
    with _LOCK:
        if "ok" in _STATE:
            return _STATE["ok"]
        _STATE["ok"], _STATE["why"] = _import_torchvision()
        return _STATE["ok"]


def torchvision_problem() -> str:
    """Why :func:`ensure_torchvision` returned False ("" when it did not)."""
    ensure_torchvision()
    return _STATE.get("why", "")


def _import_torchvision() -> tuple[bool, str]:
    if importlib.util.find_spec("torchvision") is None:
        return False, "torchvision is not installed (pip install torchvision matching your torch; see README)"
    try:
        importlib.import_module("torchvision.transforms.v2")
        return True, ""
    except Exception as e:  # noqa: BLE001 - any import failure is reported, the known one repaired
        msg = str(e)
    if "torchvision::nms does not exist" not in msg:
        return False, f"torchvision fails to import ({msg.strip().splitlines()[0] if msg.strip() else ''})"
    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # the half-imported package: import it again from the start
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    _STATE["lib"] = lib  # a Library object undefines its ops when collected
    try:
        importlib.import_module("torchvision.transforms.v2")
        return True, ""
    except Exception as e:  # noqa: BLE001
        return False, f"torchvision fails to import even with its op schemas defined ({str(e).splitlines()[0]})"


def family_processor(full: str, image_only: type, video: str, video_kw: dict, **kw):
    """A tiny model's processor laid out like its real checkpoint: transformers' ``full`` processor
    class with its ``video`` processor (``video_kw``: the checkpoint's video_preprocessor_config
    values) where torchvision imports, else ``image_only`` (the same processor without it; images
    behave identically). Saved, either reloads with ``AutoProcessor`` where it was built."""
    if ensure_torchvision():
        import transformers

        vp = getattr(transformers, video)(**video_kw)
        return getattr(transformers, full)(video_processor=vp, **kw)
    return image_only(**kw)


def require_video(family: str, processor) -> None:
    """A one-line ConfigError unless ``processor`` can take videos (exit 2 at the CLI)."""
    if getattr(processor, "video_processor", None) is not None:
        return
    why = "" if ensure_torchvision() else f"; {torchvision_problem()}"
    raise ConfigError(f"modality: video needs the {family} processor's video processor, and this one has none "
                      f"(real checkpoints carry video_preprocessor_config.json; it needs torchvision{why})")


def check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ConfigError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    return modality
