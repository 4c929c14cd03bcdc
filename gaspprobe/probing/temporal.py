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
                 both_directions: bool = True, positions: list[int] | None = None) -> list[tuple[int, int, int]]:
    """Seeded frame pairs of a clip: a list of ``(i, j, gap)`` with |i - j| = gap < n_frames.

    ``positions``: the clip frame each of the ``n_frames`` grid frames stands for (video input:
    each temporal token slice's anchor frame, e.g. 0, 2, 4, ... for Qwen's two-frame slices). Then
    ``i``, ``j`` index the grid frames and ``gap`` is ``positions[j] - positions[i]`` in clip frames;
    gaps no pair of positions spans are absent. Without it the draws are exactly those of
    ``positions = range(n_frames)``."""
    g = torch.Generator().manual_seed(int(seed))
    pos = list(range(n_frames)) if positions is None else [int(p) for p in positions]
    where = {p: i for i, p in enumerate(pos)}
    out: list[tuple[int, int, int]] = []
    for gap in sorted(set(int(x) for x in gaps)):
        if gap < 1:
            continue
        cands = [i for i, p in enumerate(pos) if p + gap in where]
        if not cands:
            continue
        k = min(pairs_per_gap, len(cands))
        starts = sorted(cands[s] for s in torch.randperm(len(cands), generator=g)[:k].tolist())
        for i in starts:
            j = where[pos[i] + gap]
            out.append((i, j, gap))
            if both_directions:
                out.append((j, i, gap))
    return out


def robustness(acc_by_gap: dict[int, float], n_by_gap: dict[int, int]) -> tuple[float, dict[int, float]]:
    """Temporal robustness from per-gap accuracies: ``(value, ratios)`` of
    :func:`gaspprobe.tables.robustness` (the one implementation; kept for old callers)."""
    from gaspprobe.tables import robustness as _rob

    r = _rob(acc_by_gap, n_by_gap)
    return r.value, r.ratios
