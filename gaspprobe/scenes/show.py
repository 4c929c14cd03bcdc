"""A picture of a frame pair: both frames side by side with a sample of ground-truth matches as
coloured lines, and their depth maps below (what ``gaspprobe scenes show`` draws)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gaspprobe.scenes.correspondence import DEPTH_TOL, patch_matches
from gaspprobe.scenes.types import Scene


def default_pair(scene: Scene) -> tuple[int, int]:
    """The pair drawn when none is given: the first frame and the middle one."""
    F = scene.num_frames
    return 0, min(F - 1, max(1, F // 2)) if F > 1 else 0


def show_pair(scene: Scene, i: int, j: int, out: str | Path, *, grid: tuple[int, int] = (16, 16),
              n_lines: int = 40, seed: int = 0, depth_tol: float = DEPTH_TOL) -> dict:
    """Draw frames ``i`` and ``j`` with up to ``n_lines`` GT matches on a ``grid`` of equal boxes
    (a seeded random sample, line colour by source position), and both depth maps; write ``out``
    (PNG, atomically).

    Returns:
        {"path", "n_matches", "n_src", "drawn"} for the caller to print.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from gaspprobe.io import atomic_path

    F = scene.num_frames
    for name, f in (("i", i), ("j", j)):
        if not -F <= f < F:
            raise IndexError(f"frame {name}={f} out of range for scene {scene.name!r} with {F} frames")
    i, j = i % F, j % F
    m = patch_matches(scene, i, j, grid, depth_tol=depth_tol)
    H, W = scene.size
    gap = max(4, W // 40)
    canvas = np.full((H, 2 * W + gap, 3), 255, dtype=np.uint8)
    canvas[:, :W] = scene.rgb[i].numpy()
    canvas[:, W + gap:] = scene.rgb[j].numpy()
    k = len(m)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(k, generator=g)[: min(n_lines, k)].sort().values
    fig, axes = plt.subplots(2, 1, figsize=(10, 10 * (2 * H) / (2 * W + gap) + 0.8),
                             gridspec_kw={"height_ratios": [1, 1]})
    ax = axes[0]
    ax.imshow(canvas, interpolation="nearest")
    cmap = plt.get_cmap("hsv")
    for n, q in enumerate(pick.tolist()):
        x0, y0 = m.src_xy[q].tolist()
        x1, y1 = m.tgt_xy[q].tolist()
        col = cmap(n / max(len(pick), 1))
        ax.plot([x0, x1 + W + gap], [y0, y1], "-", color=col, lw=1.0, alpha=0.9)
        ax.plot([x0, x1 + W + gap], [y0, y1], "o", color=col, ms=2.5)
    fid = scene.frame_ids or list(range(F))
    ax.set_title(f"{scene.name}: frames {fid[i]} -> {fid[j]}  ({k} of {m.n_src} {grid[0]}x{grid[1]} "
                 f"patches matched, {len(pick)} drawn, depth tol {depth_tol:g})", fontsize=9)
    ax.axis("off")
    dmax = float(scene.depth[[i, j]].max()) or 1.0
    dcan = np.full((H, 2 * W + gap), np.nan, dtype=np.float32)
    dcan[:, :W] = np.where(scene.depth[i].numpy() > 0, scene.depth[i].numpy(), np.nan)
    dcan[:, W + gap:] = np.where(scene.depth[j].numpy() > 0, scene.depth[j].numpy(), np.nan)
    im = axes[1].imshow(dcan, cmap="viridis", vmin=0, vmax=dmax, interpolation="nearest")
    axes[1].set_title("depth (m); blank = invalid", fontsize=9)
    axes[1].axis("off")
    fig.colorbar(im, ax=axes[1], fraction=0.025, pad=0.01)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return {"path": out, "n_matches": k, "n_src": m.n_src, "drawn": int(len(pick))}
