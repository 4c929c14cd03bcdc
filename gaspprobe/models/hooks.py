"""Hook machinery shared by every family: early stop, peft unwrapping, and the attention-interface
function that records q/k as the model's own attention receives them.

``gaspprobe_qk`` is registered once with transformers' ``AttentionInterface``; a capture in
attention / q_rope / k_rope mode switches the language model's attention implementation to it for
its forward (per thread, reference-counted), and it records the image-token rows of the hooked
layers before running SDPA (or the module's eager function where SDPA cannot, e.g. soft-capping).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import torch

QK_IMPL = "gaspprobe_qk"


class _StopForward(Exception):
    """Raised from a hook after the last requested layer: the rest of the forward is skipped."""


def _unwrap(model: Any) -> Any:
    """The transformers model under a peft wrapper (same module objects, so hooks still fire)."""
    while type(model).__name__.startswith("Peft") and hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def _getattr_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


class _QKRecorder:
    """State of one attention-mode capture, read by the registered ``gaspprobe_qk`` function."""

    def __init__(self, modules: dict[int, int], idx: torch.Tensor, emit: Callable[[int, Any, Any], None],
                 kind: str = "attention"):
        self.kind = kind  # "attention" (scaled q, repeated k), "q_rope" or "k_rope" (as they arrive)
        self.modules = modules  # id(self_attn module) -> layer index
        self.idx = idx  # [B, N] image-token positions (already on the model's device)
        self.rows = torch.arange(idx.shape[0], device=idx.device)[:, None]
        self.emit = emit


# (id(attention config), thread id) -> recorder. Hooks and recorders act only in the thread whose
# forward installed them, so nested or concurrent captures on one model never see each other's layers.
_ACTIVE_QK: dict[tuple[int, int], _QKRecorder] = {}
_QK_USERS: dict[int, list] = {}  # id(attention config) -> [active captures, original implementation]
_QK_LOCK = threading.Lock()


def _qk_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """AttentionInterface function: record image-token q/k of hooked layers, then run SDPA.

    ``query`` [B,H,S,dh] and ``key`` [B,Hkv,S,dh] arrive exactly as the model computed them
    (rotary applied). The recorded query is rescaled by ``scaling*sqrt(dh)`` so that the contract
    ``logit = q.k / sqrt(dh)`` per head holds even for models whose scaling is not 1/sqrt(dh).
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    rec = _ACTIVE_QK.get((id(module.config), threading.get_ident()))
    if rec is not None and id(module) in rec.modules:
        B, H, S, dh = query.shape
        idx = rec.idx if rec.idx.device == query.device else rec.idx.to(query.device)
        rows = rec.rows if rec.rows.device == query.device else rec.rows.to(query.device)
        q = query.transpose(1, 2)[rows, idx]  # [B, N, H, dh]
        k = key.transpose(1, 2)[rows, idx]  # [B, N, Hkv, dh]
        if rec.kind == "q_rope":
            rec.emit(rec.modules[id(module)], q.reshape(B, q.shape[1], -1), None)
        elif rec.kind == "k_rope":
            rec.emit(rec.modules[id(module)], k.reshape(B, k.shape[1], -1), None)
        else:
            k = k.repeat_interleave(H // k.shape[2], dim=2)  # GQA: kv head j serves query heads j*g..j*g+g-1
            s = scaling if scaling is not None else dh**-0.5
            q = q * (s * dh**0.5)
            rec.emit(rec.modules[id(module)], q.reshape(B, q.shape[1], H * dh), k.reshape(B, k.shape[1], H * dh))
    if kwargs.get("softcap") is not None:  # Gemma 2 (PaliGemma 2) soft-caps its logits: SDPA cannot
        import sys

        eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward")
        if attention_mask is not None and attention_mask.dtype == torch.bool:  # our mask is SDPA's boolean one
            attention_mask = torch.zeros(attention_mask.shape, dtype=query.dtype, device=query.device).masked_fill(
                ~attention_mask, torch.finfo(query.dtype).min)
        return eager(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling,
                                  dropout=dropout, **kwargs)


_QK_REGISTERED = False


def _register_qk() -> None:
    global _QK_REGISTERED
    if _QK_REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(QK_IMPL, _qk_attention)
    AttentionMaskInterface.register(QK_IMPL, sdpa_mask)
    _QK_REGISTERED = True
