"""Generation: chat template order, batching with left padding == one sample at a time, greedy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaspprobe.models.registry import supported
from gaspprobe.models.testing import tiny_adapter

pytestmark = pytest.mark.slow


def _batch():
    rs = np.random.RandomState(0)
    return [(rs.randint(0, 256, (2, 112, 112, 3), dtype=np.uint8), "How many chairs are in the room?"),
            (rs.randint(0, 256, (2, 112, 112, 3), dtype=np.uint8), "Which is closer?"),
            (rs.randint(0, 256, (1, 112, 168, 3), dtype=np.uint8), "A")]


@pytest.mark.parametrize("arch", supported())
def test_batched_generation_equals_one_at_a_time(arch):
    ad = tiny_adapter(arch)
    batch = _batch()
    out = ad.generate(batch, max_new_tokens=5)
    assert len(out) == 3 and all(isinstance(s, str) for s in out)
    assert out == [ad.generate([s], max_new_tokens=5)[0] for s in batch]
    assert out == ad.generate(batch, max_new_tokens=5)  # greedy: deterministic
    assert ad.generate([], max_new_tokens=5) == []


@pytest.mark.parametrize("arch", supported())
def test_chat_template_puts_images_then_text(arch):
    ad = tiny_adapter(arch)
    frames, prompt = _batch()[0]
    x = ad.prepare([(frames, prompt)])
    ids = x["input_ids"][0]
    img = (ids == ad.image_token_id).nonzero().squeeze(-1)
    text = ad.processor.tokenizer.decode(ids[img.max() + 1:], skip_special_tokens=True)
    assert prompt in text  # the prompt follows the last image token
    assert prompt not in ad.processor.tokenizer.decode(ids[:img.min()], skip_special_tokens=True)
    # left padding in a batch: the real tokens are flush right
    xb = ad.prepare([(frames, prompt), (frames[:1], "A")])
    assert bool(xb["attention_mask"][:, -1].all())


def test_generation_respects_max_new_tokens():
    ad = tiny_adapter("qwen2_5_vl")
    frames, prompt = _batch()[1]
    x = ad.prepare([(frames, prompt)])
    with torch.no_grad():
        full = ad.model.generate(**x, max_new_tokens=3, do_sample=False, pad_token_id=ad.processor.tokenizer.pad_token_id)
    assert full.shape[1] - x["input_ids"].shape[1] <= 3
    new = ad.processor.tokenizer.decode(full[0, x["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert ad.generate([(frames, prompt)], max_new_tokens=3) == [new]
