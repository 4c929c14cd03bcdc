"""Capture modes q, k, v, q_rope, k_rope against a naive reference, for every registered family.

Reference: a plain forward pre-hook records each decoder layer's whole input (the same as
``output_hidden_states`` except where Qwen3-VL adds its deepstack features between layers); the layer's own
``input_layernorm`` and ``q_proj``/``k_proj``/``v_proj`` (and ``q_norm``/``k_norm`` where the family
has them, applied per head) are run by hand on it at the image-token positions. After rotary: the
attention capture's query/key (scaled back, GQA-unrepeated), and for LLaVA (1-D rope) the rotary
embedding applied by hand with the model's ``rotary_emb``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaspprobe.errors import ModelError
from gaspprobe.models.registry import supported
from gaspprobe.models.testing import tiny_adapter

FRAMES = np.random.RandomState(0).randint(0, 256, (2, 448, 448, 3)).astype(np.uint8)


def _reference(ad, frames):
    """{layer index: {"q","k","v": [F, R, C, D]}} by hand from output_hidden_states."""
    inputs, grid, idx = ad.prepare_capture(frames)
    hs = {}
    hooks = [layer.register_forward_pre_hook(
        lambda m, a, k, i=i: hs.__setitem__(i, (a[0] if a else k["hidden_states"]).clone()), with_kwargs=True)
        for i, layer in enumerate(ad.decoder_layers())]
    try:
        with torch.inference_mode():
            ad.model(**inputs, use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    F, R, C = grid.shape
    ref = {}
    for i, layer in enumerate(ad.decoder_layers()):
        attn = layer.self_attn
        with torch.inference_mode():
            x = layer.input_layernorm(hs[i])
            d = {}
            for m in ("q", "k", "v"):
                y = getattr(attn, f"{m}_proj")(x)
                norm = getattr(attn, f"{m}_norm", None) if m != "v" else None
                if isinstance(norm, torch.nn.Module):
                    y = norm(y.view(*y.shape[:2], -1, attn.head_dim)).reshape(*y.shape[:2], -1)
                d[m] = y[0, idx[0]].reshape(F, R, C, -1).float()
        ref[i] = d
    return ref


@pytest.mark.parametrize("arch", supported())
def test_qkv_match_the_layers_own_projections(arch):
    ad = tiny_adapter(arch)
    ref = _reference(ad, FRAMES)
    for mode in ("q", "k", "v"):
        caps = list(ad.capture(FRAMES, mode=mode))
        assert [c.name for c in caps] == ad.layer_names()[1:]
        for c in caps:
            i = int(c.name.split(".")[1])
            torch.testing.assert_close(c.feats, ref[i][mode], atol=2e-4, rtol=1e-4, msg=f"{arch} {mode} {c.name}")


@pytest.mark.parametrize("arch", supported())
def test_rope_modes_are_what_attention_receives(arch):
    """q_rope/k_rope = the attention capture's q/k before its scaling and GQA repeat, and rotary keeps
    each head's norm (it is a rotation) while changing the vectors."""
    ad = tiny_adapter(arch)
    att = {c.name: c for c in ad.capture(FRAMES, mode="attention", layers=["llm.1"])}["llm.1"]
    (qr,) = ad.capture(FRAMES, mode="q_rope", layers=["llm.1"])
    (kr,) = ad.capture(FRAMES, mode="k_rope", layers=["llm.1"])
    (q,) = ad.capture(FRAMES, mode="q", layers=["llm.1"])
    attn = ad.decoder_layers()[1].self_attn
    dh = attn.head_dim
    s = getattr(attn, "scaling", dh**-0.5)
    torch.testing.assert_close(qr.feats * (s * dh**0.5), att.query, atol=1e-4, rtol=1e-4)
    H, Hkv = att.query.shape[-1] // dh, kr.feats.shape[-1] // dh
    rep = kr.feats.unflatten(-1, (Hkv, dh)).repeat_interleave(H // Hkv, dim=-2).flatten(-2)
    torch.testing.assert_close(rep, att.key, atol=1e-4, rtol=1e-4)
    per_head = lambda t: t.unflatten(-1, (-1, dh)).norm(dim=-1)  # noqa: E731
    torch.testing.assert_close(per_head(qr.feats), per_head(q.feats), atol=1e-4, rtol=1e-4)
    assert (qr.feats - q.feats).abs().max() > 1e-3


def test_llava_q_rope_by_hand():
    """1-D rotary (LLaVA's Llama) applied by hand to the reference q at positions 0..S-1."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    ad = tiny_adapter("llava")
    inputs, grid, idx = ad.prepare_capture(FRAMES)
    with torch.inference_mode():
        hs = ad.model(**inputs, output_hidden_states=True, use_cache=False).hidden_states
        layer = ad.decoder_layers()[2]
        attn = layer.self_attn
        x = layer.input_layernorm(hs[2])
        S = x.shape[1]
        q = attn.q_proj(x).view(1, S, -1, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(1, S, -1, attn.head_dim).transpose(1, 2)
        rot = ad.model.model.language_model.rotary_emb
        cos, sin = rot(x, torch.arange(S)[None])
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
    F, R, C = grid.shape
    (qr,) = ad.capture(FRAMES, mode="q_rope", layers=["llm.2"])
    (kr,) = ad.capture(FRAMES, mode="k_rope", layers=["llm.2"])
    torch.testing.assert_close(qr.feats, q.transpose(1, 2)[0, idx[0]].reshape(F, R, C, -1), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(kr.feats, k.transpose(1, 2)[0, idx[0]].reshape(F, R, C, -1), atol=1e-4, rtol=1e-4)


def test_qkv_early_stop_and_per_frame():
    ad = tiny_adapter("qwen2_5_vl")
    (full,) = [c for c in ad.capture(FRAMES, mode="v") if c.name == "llm.1"]
    (one,) = ad.capture(FRAMES, mode="v", layers=["llm.1"])
    torch.testing.assert_close(one.feats, full.feats)
    pf = list(ad.capture(FRAMES, mode="k", layers=["llm.0"], per_frame=True))
    assert pf[0].feats.shape[:3] == ad.last_grid.shape


def test_bad_modes_are_one_line_model_errors():
    ad = tiny_adapter("qwen2_5_vl")
    with pytest.raises(ModelError, match="mode must be one of"):
        list(ad.capture(FRAMES, mode="z"))
    with pytest.raises(ModelError, match="'vision' has no self-attention; mode 'q'"):
        list(ad.capture(FRAMES, mode="q", layers=["vision"]))
    fresh = tiny_adapter("llava", fresh=True)
    for layer in fresh.decoder_layers():  # a family whose attention has no separate v projection
        layer.self_attn.v_proj = None
    assert "v" not in fresh.capture_modes() and "q" in fresh.capture_modes()
    with pytest.raises(ModelError) as e:
        list(fresh.capture(FRAMES, mode="v"))
    assert "mode 'v'" in str(e.value) and "cannot hook it" in str(e.value) and "\n" not in str(e.value)
