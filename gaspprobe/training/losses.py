"""GASP losses on per-layer head embeddings: symmetric InfoNCE over GT matches and depth consistency.

Start at :func:`gasp_loss`, which combines the per-layer parts into
``L = lambda_c * L_corr + lambda_d * L_depth`` (the optional LM loss is added by the trainer) and
returns ``(total, details)`` with per-layer keys ``"llm.3/corr"``, ``"llm.3/depth"``,
``"llm.3/acc"`` so logs show which layers learn.

Batch layout (built by :mod:`gaspprobe.training.data`): embeddings ``emb`` are ``[B, F, N, e]``
(B clips, F frames per clip, N = rows*cols tokens per frame, row-major), L2-normalised. A
:class:`MatchSet` lists frame pairs ``(b, i, j)`` and, for each GT match, its pair, its source token
``src`` in frame i, its target token ``tgt`` in frame j and the GT depth ``depth`` of the 3D point
seen from camera j (``PatchMatches.proj_depth``). Everything is batched: one ``[P, N, N]``
similarity tensor for all pairs, gathered per match; no Python loop over matches or tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as Fn


@dataclass
class MatchSet:
    """GT matches of a micro-batch on one token grid.

    pair_b, pair_i, pair_j: long [P] (clip, source frame, target frame);
    pair: long [M] (index into the pairs); src, tgt: long [M] (token indices in frames i / j);
    depth: float [M] (z of the matched 3D point in camera j, metres);
    token_depth: float [B, F, N] (patch depth per token, 0 = invalid);
    n_tokens: N; grid: (rows, cols) the matches refer to.
    """

    pair_b: torch.Tensor
    pair_i: torch.Tensor
    pair_j: torch.Tensor
    pair: torch.Tensor
    src: torch.Tensor
    tgt: torch.Tensor
    depth: torch.Tensor
    token_depth: torch.Tensor
    grid: tuple[int, int]

    @property
    def num_matches(self) -> int:
        return int(self.src.numel())

    def to(self, device) -> "MatchSet":
        return MatchSet(*(getattr(self, k).to(device) for k in
                          ("pair_b", "pair_i", "pair_j", "pair", "src", "tgt", "depth", "token_depth")),
                        grid=self.grid)


def pair_logits(emb: torch.Tensor, m: MatchSet, temperature: float) -> torch.Tensor:
    """Similarity logits of every listed frame pair: ``[P, N, N]`` with
    ``out[p, s, t] = <emb[b_p, i_p, s], emb[b_p, j_p, t]> / temperature``."""
    a = emb[m.pair_b, m.pair_i]                                # [P, N, e]
    b = emb[m.pair_b, m.pair_j]
    return torch.einsum("pse,pte->pst", a, b) / temperature


def _f32(x: torch.Tensor) -> torch.Tensor:
    # Softmax/CE in at least float32 (mixed precision gives bf16/fp16 logits); float64 stays.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _zero(emb: torch.Tensor) -> torch.Tensor:
    # A zero that stays in the graph: with no matches the step still backpropagates (all grads 0,
    # so DDP/accumulation see every parameter) and nothing is divided by zero.
    return emb.sum() * 0.0


def _weighted_mean(values: torch.Tensor, pair: torch.Tensor, weighting: str) -> torch.Tensor:
    """Mean of per-match ``values`` [M]: ``"match"`` = every match counts once; ``"pair"`` = every
    frame pair with matches counts once (mean over pairs of the mean over its matches), which
    stops close frame pairs, which have the most matches, from dominating the loss."""
    if weighting == "match":
        return values.mean()
    if weighting != "pair":
        raise ValueError(f"weighting: expected 'match' or 'pair', got {weighting!r}")
    _, inv, counts = torch.unique(pair, return_inverse=True, return_counts=True)
    w = 1.0 / (counts[inv].to(values.dtype) * counts.numel())
    return (values * w).sum()


def info_nce(emb: torch.Tensor, m: MatchSet, temperature: float = 0.07,
             logits: torch.Tensor | None = None, weighting: str = "match") -> tuple[torch.Tensor, dict[str, float]]:
    """Symmetric InfoNCE over GT matches.

    For a match (s in frame i, t in frame j): forward term ``CE(logits[s, :], t)`` (negatives: all
    other tokens of frame j), backward term ``CE(logits[:, t], s)`` (negatives: all other tokens of
    frame i); loss = mean over matches of the average of the two (``weighting="pair"``: mean over
    frame pairs of that, see :func:`_weighted_mean`). ``acc`` is the fraction whose forward argmax
    is the GT target. Zero matches -> loss 0 (in-graph), ``n = 0``, no NaN.

    Args: emb [B, F, N, e] (normalised); m: MatchSet; logits: precomputed ``pair_logits`` to reuse.
    Returns: (loss scalar, {"acc": float, "n": int}).
    """
    if m.num_matches == 0:
        return _zero(emb), {"acc": float("nan"), "n": 0}
    lg = pair_logits(emb, m, temperature) if logits is None else logits
    fwd = lg[m.pair, m.src]                                     # [M, N] over frame j
    bwd = lg[m.pair, :, m.tgt]                                  # [M, N] over frame i
    per = 0.5 * (Fn.cross_entropy(_f32(fwd), m.tgt, reduction="none")
                 + Fn.cross_entropy(_f32(bwd), m.src, reduction="none"))
    loss = _weighted_mean(per, m.pair, weighting)
    acc = (fwd.detach().argmax(-1) == m.tgt).float().mean().item()
    return loss, {"acc": acc, "n": m.num_matches}


def depth_consistency(emb: torch.Tensor, m: MatchSet, temperature: float = 0.07, eps: float = 1e-6,
                      logits: torch.Tensor | None = None, weighting: str = "match",
                      ) -> tuple[torch.Tensor, dict[str, float]]:
    """Depth-consistency loss (soft-argmax expected depth), as reported for the GASP paper.

    For a match (s in frame i), ``p = softmax_q(logits[s, q])`` over the target frame's tokens q
    with valid patch depth, ``d_hat = sum_q p_q * depth_j(q)``, and against the GT depth ``d`` of
    that 3D point seen from camera j the loss is the relative error ``|d - d_hat| / (d + d_hat +
    eps)``, averaged over matches. Tokens with invalid depth (0) are masked out of the softmax; a
    target frame with no valid depth contributes nothing. Zero matches -> 0 (in-graph), no NaN.

    Returns: (loss scalar, {"n": int}).
    """
    if m.num_matches == 0:
        return _zero(emb), {"n": 0}
    lg = pair_logits(emb, m, temperature) if logits is None else logits
    fwd = _f32(lg[m.pair, m.src])                                       # [M, N]
    dj = m.token_depth[m.pair_b[m.pair], m.pair_j[m.pair]].to(fwd.dtype)    # [M, N]
    valid = dj > 0
    keep = valid.any(-1)
    if not bool(keep.any()):
        return _zero(emb), {"n": 0}
    fwd, dj, valid = fwd[keep], dj[keep], valid[keep]
    p = torch.softmax(fwd.masked_fill(~valid, float("-inf")), -1)
    d_hat = (p * dj).sum(-1)
    d = m.depth[keep].to(d_hat.dtype)
    loss = _weighted_mean((d - d_hat).abs() / (d + d_hat + eps), m.pair[keep], weighting)
    return loss, {"n": int(keep.sum())}


def resample(emb: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Resample token embeddings ``[B, F, rows*cols, e]`` on ``grid`` to a ``size`` grid
    (area average when coarser, bilinear when finer) and re-normalise: ``[B, F, R*C, e]``.
    Used for the coarse/fine GT-grid option."""
    B, F, N, e = emb.shape
    rows, cols = grid
    if (rows, cols) == tuple(size):
        return emb
    x = emb.reshape(B * F, rows, cols, e).permute(0, 3, 1, 2)
    if size[0] <= rows and size[1] <= cols:
        x = Fn.adaptive_avg_pool2d(x, size)
    else:
        x = Fn.interpolate(x, size=size, mode="bilinear", align_corners=False)
    x = x.permute(0, 2, 3, 1).reshape(B, F, size[0] * size[1], e)
    return Fn.normalize(x, dim=-1)


def gasp_loss(embs: dict[str, torch.Tensor], matches: dict[str, MatchSet], *, temperature: float = 0.07,
              lambda_corr: float = 1.0, lambda_depth: float = 0.1,
              layer_weights: dict[str, float] | None = None,
              weighting: str = "match") -> tuple[torch.Tensor, dict[str, float]]:
    """Correspondence + depth loss over layers and GT grids.

    Args:
        embs: ``{layer: [B, F, rows*cols, e]}`` normalised head outputs on the token grid.
        matches: ``{"token": MatchSet on the token grid, "8": MatchSet on an 8x8 grid, ...}``; an
            entry whose grid differs from the token grid gets resampled embeddings.
        layer_weights: ``{layer: w}``, missing layers weigh 1; per-layer losses are averaged with
            these weights (normalised to sum 1) so the scale does not grow with depth.
        weighting: ``"match"`` (every GT match counts once) or ``"pair"`` (every frame pair once).
    Returns:
        (total, details) where details has ``"{layer}/corr"``, ``"{layer}/depth"``,
        ``"{layer}/acc"`` (in-batch forward match accuracy on the token grid) and the weighted
        means ``"corr"``, ``"depth"``, ``"loss"``, plus ``"n_matches"``.
    """
    layer_weights = layer_weights or {}
    ws = {n: float(layer_weights.get(n, 1.0)) for n in embs}
    wsum = sum(ws.values())
    if wsum <= 0:
        raise ValueError("layer weights sum to 0")
    token_grid = matches["token"].grid if "token" in matches else None
    corr_tot = depth_tot = None
    det: dict[str, float] = {}
    for n, emb in embs.items():
        w = ws[n] / wsum
        corr_l, depth_l, k = 0.0, 0.0, 0
        for key, m in matches.items():
            e = emb if key == "token" or token_grid is None else resample(emb, token_grid, m.grid)
            lg = pair_logits(e, m, temperature) if m.num_matches else None
            c, cd = info_nce(e, m, temperature, logits=lg, weighting=weighting)
            d, _ = (depth_consistency(e, m, temperature, logits=lg, weighting=weighting) if lambda_depth > 0
                    else (_zero(e), {}))
            corr_l, depth_l, k = corr_l + c, depth_l + d, k + 1
            if key == "token":
                det[f"{n}/acc"] = cd["acc"]
        corr_l, depth_l = corr_l / k, depth_l / k
        det[f"{n}/corr"] = float(corr_l.detach())
        det[f"{n}/depth"] = float(depth_l.detach())
        corr_tot = w * corr_l if corr_tot is None else corr_tot + w * corr_l
        depth_tot = w * depth_l if depth_tot is None else depth_tot + w * depth_l
    total = lambda_corr * corr_tot + lambda_depth * depth_tot
    det["corr"] = float(corr_tot.detach())
    det["depth"] = float(depth_tot.detach())
    det["loss"] = float(total.detach())
    det["n_matches"] = matches["token"].num_matches if "token" in matches else 0
    return total, det
