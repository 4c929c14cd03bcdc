"""Per-layer capture against the model's own outputs.

Independent references: ``output_hidden_states`` of a plain forward (and the final norm applied
to the last captured layer), eager attention probabilities (whose log equals the logits up to a
per-row constant), one-image forwards for ``per_frame``, and forward-call counters for streaming
and early stopping.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaspprobe.errors import DataError, ModelError
from gaspprobe.models.base import DEFAULT_PROMPT
from gaspprobe.models.registry import supported
from gaspprobe.models.testing import tiny_adapter

pytestmark = pytest.mark.slow


def frames(F=3, H=448, W=448, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (F, H, W, 3), dtype=np.uint8)


def final_norm(ad):
    """The language model's final norm (the module that owns the decoder layers has it)."""
    return _getattr(ad.model, ad.spec.layers_path.rsplit(".", 1)[0]).norm


def _getattr(obj, path):
    for p in path.split("."):
        obj = getattr(obj, p)
    return obj


def reference_hidden(ad, fr, prompt=DEFAULT_PROMPT):
    with torch.no_grad():
        return ad.model(**ad.prepare([(fr, prompt)]), output_hidden_states=True).hidden_states


@pytest.mark.parametrize("arch", supported())
def test_hidden_capture_equals_output_hidden_states(arch):
    ad = tiny_adapter(arch)
    fr = frames(3, 336, 448)
    caps = list(ad.capture(fr))
    assert [c.name for c in caps] == ad.layer_names()
    g = ad.last_grid
    F, R, C = g.shape
    assert F == 3
    hs = reference_hidden(ad, fr)
    pos = g.seq_index.reshape(-1)
    L = ad.num_layers
    for i, c in enumerate(caps):
        assert c.feats.dtype == torch.float32 and c.feats.shape == (F, R, C, ad.hidden_size)
        if i < L:  # hidden_states[0] = LLM input (projector output scattered in), [i] = layer i-1 output
            ref = hs[i][0, pos].reshape(F, R, C, -1)
        else:  # the last entry of output_hidden_states is after the final norm; captures are before it
            ref = hs[L][0, pos].reshape(F, R, C, -1)
            with torch.no_grad():
                c = type(c)(c.name, feats=final_norm(ad)(c.feats))
        torch.testing.assert_close(c.feats, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", supported())
def test_attention_capture_equals_eager_logits(arch):
    ad = tiny_adapter(arch)
    fr = frames(2, 224, 224, seed=3)
    caps = {c.name: c for c in ad.capture(fr, mode="attention")}
    assert list(caps) == ad.layer_names()[1:]
    g = ad.last_grid
    attn = ad.decoder_layers()[0].self_attn
    H = attn.config.num_attention_heads
    dh = caps["llm.0"].query.shape[-1] // H
    cfg = attn.config
    orig = cfg._attn_implementation
    cfg._attn_implementation = "eager"
    try:
        with torch.no_grad():
            out = ad.model(**ad.prepare([(fr, DEFAULT_PROMPT)]), output_attentions=True)
    finally:
        cfg._attn_implementation = orig
    src = g.seq_index[1].reshape(-1)  # frame 1 attends to all of frame 0 (causal: frame 0 comes first)
    tgt = g.seq_index[0].reshape(-1)
    for i in range(ad.num_layers):
        logp = torch.log(out.attentions[i][0][:, src][:, :, tgt].double())  # [H, Ns, Nt]
        q = caps[f"llm.{i}"].query[1].reshape(-1, H, dh).double()
        k = caps[f"llm.{i}"].key[0].reshape(-1, H, dh).double()
        logits = torch.einsum("phd,qhd->hpq", q, k) / dh**0.5
        # softmax removes a per-(head, query) constant: compare row-centred values
        a = logp - logp.mean(-1, keepdim=True)
        b = logits - logits.mean(-1, keepdim=True)
        torch.testing.assert_close(b, a, rtol=1e-4, atol=2e-5)
        assert b.abs().max() > 1e-3  # not vacuous
        # the documented head-averaged form
        avg = (caps[f"llm.{i}"].query[1].reshape(-1, H * dh) @ caps[f"llm.{i}"].key[0].reshape(-1, H * dh).T)
        torch.testing.assert_close((avg / (H * dh**0.5)).double(), logits.mean(0), rtol=1e-4, atol=1e-6)
    # the model's attention implementation is restored
    assert cfg._attn_implementation == orig


def test_streaming_one_layer_at_a_time_and_early_stop():
    ad = tiny_adapter("qwen2_5_vl")
    dec = ad.decoder_layers()
    started: list[int] = []
    # count layers whose attention has started (inside the layer, after any pre-hook on the layer)
    handles = [layer.self_attn.register_forward_pre_hook(lambda m, a, i=i: started.append(i))
               for i, layer in enumerate(dec)]
    try:
        for cap in ad.capture(frames(2, 224, 224)):
            # when layer i is handed out, layer i+1 has not started
            n = 0 if cap.name == "vision" else int(cap.name.split(".")[1]) + 1
            assert started == list(range(n)), (cap.name, started)
        started.clear()
        got = [c.name for c in ad.capture(frames(2, 224, 224), layers=["llm.1", "vision"])]
        assert got == ["vision", "llm.1"]
        assert started == [0, 1]  # stopped after the last requested layer
        started.clear()
        for cap in ad.capture(frames(2, 224, 224)):
            if cap.name == "llm.0":
                break  # abandoning the generator stops the forward
        assert started == [0, 1] or started == [0]
    finally:
        for h in handles:
            h.remove()
    # no hook of ours is left behind (transformers keeps its own output-capturing hooks)
    ours = [fn for layer in dec for d in (layer._forward_hooks, layer._forward_pre_hooks, layer.self_attn._forward_pre_hooks)
            for fn in d.values() if fn.__module__.startswith("gaspprobe")]
    assert not ours
    assert ad.decoder_layers()[0].self_attn.config._attn_implementation != "gaspprobe_qk"


def test_run_layers_callback_sees_each_layer_before_the_next_exists():
    ad = tiny_adapter("qwen2_5_vl")
    seen = []
    grid = ad.run_layers(frames(2, 224, 224), lambda c: seen.append((c.name, c.feats.shape)))
    assert [s[0] for s in seen] == ad.layer_names()
    assert grid is ad.last_grid and seen[0][1] == (2, *grid.shape[1:], ad.hidden_size)


def test_per_frame_equals_one_image_forwards():
    ad = tiny_adapter("qwen2_5_vl")
    fr = frames(3, 224, 280, seed=5)
    caps = {c.name: c.feats for c in ad.capture(fr, per_frame=True)}
    g = ad.last_grid
    assert g.extra.get("per_frame") is True
    for f in range(3):
        hs = reference_hidden(ad, fr[f:f + 1])
        pos = g.seq_index[f].reshape(-1)
        torch.testing.assert_close(caps["llm.2"][f], hs[3][0, pos].reshape(g.rows, g.cols, -1), rtol=1e-5, atol=1e-5)
    # ...and differ from the joint multi-image pass beyond the first frame (frames see each other there)
    joint = {c.name: c.feats for c in ad.capture(fr, layers=["llm.2"])}
    assert (joint["llm.2"][2] - caps["llm.2"][2]).abs().max() > 1e-4


def test_image_features_with_grad_match_capture_and_reach_lora():
    ad = tiny_adapter("qwen2_5_vl", fresh=True)
    fb = np.stack([frames(2, 224, 224, seed=1), frames(2, 224, 224, seed=2)])
    feats = ad.image_features(fb, layers=["vision", "llm.1"])
    assert list(feats) == ["vision", "llm.1"]
    assert feats["llm.1"].shape == (2, 2, 8, 8, ad.hidden_size)  # 224x224 stays 224x224 -> 8x8 tokens of 28 px
    assert feats["llm.1"].requires_grad
    cap = {c.name: c.feats for c in ad.capture(fb[1], layers=["llm.1"])}
    torch.testing.assert_close(feats["llm.1"][1].detach(), cap["llm.1"], rtol=1e-5, atol=1e-5)
    feats["llm.1"].pow(2).mean().backward()
    dec = ad.decoder_layers()
    assert dec[1].self_attn.q_proj.weight.grad is not None
    assert dec[2].self_attn.q_proj.weight.grad is None  # stopped after llm.1
    ad.model.zero_grad(set_to_none=True)

    from peft import LoraConfig, get_peft_model

    pm = get_peft_model(ad.model, LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj)"))
    out = ad.image_features(fb, layers=["llm.0"], model=pm)
    out["llm.0"].pow(2).mean().backward()
    lora_b = [p for n, p in pm.named_parameters() if "lora_B" in n and "layers.0." in n]
    assert lora_b and all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b)


def test_bad_inputs_are_one_line_errors():
    ad = tiny_adapter("qwen2_5_vl")
    with pytest.raises(DataError, match=r"uint8 frames \[F,H,W,3\]"):
        list(ad.capture(np.zeros((2, 64, 64, 3), np.float32)))
    with pytest.raises(DataError, match=r"uint8 frames"):
        list(ad.capture(np.zeros((64, 64, 3), np.uint8)))
    with pytest.raises(ModelError, match=r"unknown layer\(s\) \['llm.99'\]"):
        list(ad.capture(frames(1, 64, 64), layers=["llm.99"]))
    with pytest.raises(ModelError, match="no layers requested"):
        list(ad.capture(frames(1, 64, 64), layers=[]))
    assert [c.name for c in ad.capture(frames(1, 64, 64), layers="llm.1")] == ["llm.1"]  # one name as a string
    with pytest.raises(ModelError, match="no self-attention"):
        list(ad.capture(frames(1, 64, 64), mode="attention", layers=["vision"]))
    with pytest.raises(ModelError, match="mode must be"):
        list(ad.capture(frames(1, 64, 64), mode="keys"))
    with pytest.raises(DataError, match=r"\[B,F,H,W,3\]"):
        ad.image_features(frames(2, 64, 64))


def test_nested_captures_and_consumer_errors_do_not_hang():
    ad = tiny_adapter("qwen2_5_vl")
    fr = frames(2, 112, 112)
    outer = []
    for cap in ad.capture(fr, layers=["vision", "llm.0"]):
        inner = [c.name for c in ad.capture(fr, layers=["llm.1"])]  # a second capture while the first is paused
        assert inner == ["llm.1"]
        outer.append(cap.name)
    assert outer == ["vision", "llm.0"]
    # attention mode nested in attention mode: each capture gets its own layers' q/k, then the
    # model's attention implementation is restored once both are done
    cfg = ad.decoder_layers()[0].self_attn.config
    orig = cfg._attn_implementation
    ref = {c.name: c.query for c in ad.capture(fr, mode="attention", layers=["llm.2"])}
    for cap in ad.capture(fr, mode="attention", layers=["llm.0"]):
        inner = {c.name: c.query for c in ad.capture(fr, mode="attention", layers=["llm.2"])}
        assert list(inner) == ["llm.2"] and torch.equal(inner["llm.2"], ref["llm.2"])
    assert cfg._attn_implementation == orig
    with pytest.raises(RuntimeError, match="consumer failed"):
        for cap in ad.capture(fr):
            raise RuntimeError("consumer failed")
    assert [c.name for c in ad.capture(fr, layers=["llm.3"])] == ["llm.3"]  # the model is usable afterwards
