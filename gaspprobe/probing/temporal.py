"""Frame-pair sampling by gap, and temporal robustness.

:func:`sample_pairs` draws, for each gap g of the recipe that the clip allows (g < frames in the
clip), up to ``pairs_per_gap`` distinct start frames i (seeded) and returns the pairs (i, i+g)
(and (i+g, i) when both directions are asked).

**Temporal robustness** (implemented once, in :func:`gaspprobe.tables.robustness`): at
one layer (the peak layer), with acc(g) the accuracy pooled over all matches of all pairs at gap
g and g_min the smallest gap that has matches,

    robustness = mean over gaps g > g_min with matches of acc(g) / acc(g_min).

Gaps with no matches (n = 0) are excluded; if acc(g_min) is 0, or no larger gap has matches, the
robustness is undefined (NaN, n = 0). A model whose correspondence does not degrade as frames
move apart scores 1; the GASP paper reports > 0.85 after training (at a 24-frame gap), while
baselines collapse beyond about 8 frames.
"""

from __future__ import annotations

import torch


def sample_pairs(n_frames: int, gaps: list[int], pairs_per_gap: int, *, seed: int,
                 both_directions: bool = True) -> list[tuple[int, int, int]]:
    """Seeded frame pairs of a clip: a list of ``(i, j, gap)`` with |i - j| = gap < n_frames."""
    g = torch.Generator().manual_seed(int(seed))
    out: list[tuple[int, int, int]] = []
    for gap in sorted(set(int(x) for x in gaps)):
        n_start = n_frames - gap
        if gap < 1 or n_start < 1:
            continue
        k = min(pairs_per_gap, n_start)
        starts = sorted(torch.randperm(n_start, generator=g)[:k].tolist())
        for i in starts:
            out.append((i, i + gap, gap))
            if both_directions:
                out.append((i + gap, i, gap))
    return out


def robustness(acc_by_gap: dict[int, float], n_by_gap: dict[int, int]) -> tuple[float, dict[int, float]]:
    """Temporal robustness from per-gap accuracies: ``(value, ratios)`` of
    :func:`gaspprobe.tables.robustness` (the one implementation; kept for old callers)."""
    from gaspprobe.tables import robustness as _rob

    r = _rob(acc_by_gap, n_by_gap)
    return r.value, r.ratios
