"""Generated from the probe-metric registry: every metric agrees with its naive reference."""

from __future__ import annotations

import pytest

from gaspprobe.probing.metrics import METRICS, patch_tokens


@pytest.mark.parametrize("name", METRICS.names())
@pytest.mark.parametrize("seed", range(12))
def test_metric_agrees_with_naive_reference(name, seed):
    m = METRICS.get(name)
    case = m.make_case(seed)
    assert m.close(m.fn(*case), m.naive(*case)), f"{name} disagrees with its reference on seed {seed}"


def test_patch_tokens():
    # LLM tokens spanning 2x2 vision patches: r=2 patches = 1 token, r=1 patch = exact token only
    assert [patch_tokens(r, 2) for r in (0, 1, 2, 3, 4)] == [0, 0, 1, 1, 2]
    assert [patch_tokens(r, 1) for r in (0, 1, 2)] == [0, 1, 2]
