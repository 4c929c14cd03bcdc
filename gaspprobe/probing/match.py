"""Nearest-neighbour patch matching and correspondence accuracy (pure, batched torch).

Start at :func:`match_tokens`. For every ground-truth match (source token ``s`` of frame ``i``
whose 3D point is visible in frame ``j`` as target token ``t``), the matcher predicts the token of
frame ``j`` with the highest similarity to ``s`` among *all* of frame ``j``'s tokens:

- mode ``hidden``: cosine similarity of the two tokens' hidden states;
- mode ``attention``: the layer's own attention logit ``q_s . k_t * scale`` (heads averaged), i.e.
  what the model itself would attend to from ``s`` among frame ``j``'s tokens.

Accuracy at tolerance ``r`` (:func:`hits_within`) counts a prediction as correct when its (row,
col) is within Chebyshev distance ``r`` of the GT token's (``r=0``: exactly the GT token). The
confidence of a match is its softmax probability over frame ``j``'s tokens,
``max softmax(sim / T)``; with ``T`` the recipe's ``conf_temperature`` for cosine and ``T=1`` on the
model's own logits. :func:`spearman` correlates confidence with correctness (ties get average
ranks, so a binary variable is handled exactly as ``scipy.stats.spearmanr`` does).

One batched product over target frames (matches grouped and padded per target frame) for narrow
features, or, for wide ones (D >= :data:`WIDE`) or when that block would be large, one
``[m, D] @ [D, T]`` product per target frame in bounded chunks (no padding); nothing loops over
tokens in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


#: Feature width from which :func:`match_tokens` multiplies per target frame instead of batching.
WIDE = 1024


@dataclass
class Matches:
    """Matcher output for M ground-truth matches (all long/float tensors of shape [M]).

    ``pred``: predicted target token (row-major index in the target frame); ``gt``: GT target
    token; ``pair``: index of the frame pair the match comes from; ``conf``: softmax confidence
    of the predicted token."""

    pred: torch.Tensor
    gt: torch.Tensor
    pair: torch.Tensor
    conf: torch.Tensor

    def __len__(self) -> int:
        return int(self.gt.numel())


def match_tokens(src_feats: torch.Tensor, tgt_feats: torch.Tensor, pairs: torch.Tensor,
                 src_idx: list[torch.Tensor], tgt_idx: list[torch.Tensor], *, cosine: bool = True,
                 logit_scale: float = 1.0, temperature: float = 1.0,
                 max_elements: int = 1 << 24) -> Matches:
    """Predict, for every GT match, the most similar token of the target frame.

    Args:
        src_feats: float [F, T, D] (or [F, rows, cols, D]) features on the source side
            (hidden states, or attention queries).
        tgt_feats: float [F, T, D] features on the target side (the same hidden states, or keys).
        pairs: long [P, 2] frame pairs (i, j): sources in frame i, targets in frame j.
        src_idx, tgt_idx: P long tensors [M_p]: GT source / target token indices (row-major).
        cosine: L2-normalise both sides (hidden mode); otherwise raw dot products (attention).
        logit_scale: multiplies the dot products (attention: 1 / (H * sqrt(dh))); irrelevant to
            the argmax, used for the confidence.
        temperature: softmax temperature of the confidence (applied after ``logit_scale``).
        max_elements: bound on the elements of one similarity block (memory).

    Returns:
        :class:`Matches` over all M = sum M_p matches, in pair order.
    """
    if src_feats.ndim == 4:
        src_feats = src_feats.reshape(src_feats.shape[0], -1, src_feats.shape[-1])
    if tgt_feats.ndim == 4:
        tgt_feats = tgt_feats.reshape(tgt_feats.shape[0], -1, tgt_feats.shape[-1])
    if src_feats.ndim != 3 or tgt_feats.ndim != 3 or src_feats.shape[:2] != tgt_feats.shape[:2]:
        raise ValueError(f"src_feats/tgt_feats: expected matching [F,T,D], got "
                         f"{tuple(src_feats.shape)} and {tuple(tgt_feats.shape)}")
    pairs = torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2).cpu()
    if len(src_idx) != pairs.shape[0] or len(tgt_idx) != pairs.shape[0]:
        raise ValueError("src_idx/tgt_idx: expected one index tensor per pair")
    src = src_feats.float()
    tgt = tgt_feats.float()
    if cosine:
        src = torch.nn.functional.normalize(src, dim=-1)
        tgt = src if tgt_feats is src_feats else torch.nn.functional.normalize(tgt, dim=-1)
    empty = Matches(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long),
                    torch.zeros(0, dtype=torch.long), torch.zeros(0))
    if pairs.shape[0] == 0:
        return empty
    sizes = torch.tensor([int(s.numel()) for s in src_idx], dtype=torch.long)
    M = int(sizes.sum())
    if M == 0:
        return empty
    pair_of = torch.repeat_interleave(torch.arange(pairs.shape[0]), sizes)
    s_idx = torch.cat([s.long().reshape(-1).cpu() for s in src_idx])
    gt = torch.cat([t.long().reshape(-1).cpu() for t in tgt_idx])
    s_frame = pairs[pair_of, 0]
    t_frame = pairs[pair_of, 1]
    dev = src.device  # compute where the features are (a GPU for a model on one); results on CPU
    T = tgt.shape[1]
    counts = torch.bincount(t_frame, minlength=tgt.shape[0])
    m_max = int(counts.max())
    # one batched product for narrow features (Python overhead dominates there); for wide ones
    # (D >= 1024, real models) one product per target frame: no padding, so exactly M x T x D
    # multiply-adds (the padded batch wasted ~3x at D = 3584, 16 frames, 32 pairs)
    if tgt.shape[0] * m_max * T <= max_elements and src.shape[-1] < WIDE:
        q = src[s_frame.to(dev), s_idx.to(dev)]  # [M, D]
        # one batched product: matches grouped by target frame, padded to [F, m_max, D]
        order = torch.argsort(t_frame, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(M) - starts[t_frame[order]]
        fo, so, oo = t_frame[order].to(dev), slot.to(dev), order.to(dev)
        qp = q.new_zeros(tgt.shape[0], m_max, q.shape[1])
        qp[fo, so] = q[oo]
        logits = torch.bmm(qp, tgt.transpose(1, 2))[fo, so] * logit_scale  # [M, T]
        best, arg = logits.max(dim=1)
        pred = torch.empty(M, dtype=torch.long)
        conf = torch.empty(M)
        pred[order] = arg.cpu()
        # max softmax prob = 1 / sum_k exp((l_k - l_max) / T), stable for any scale
        conf[order] = (1.0 / torch.exp((logits - best[:, None]) / temperature).sum(dim=1)).float().cpu()
        return Matches(pred=pred, gt=gt, pair=pair_of, conf=conf)
    pred = torch.empty(M, dtype=torch.long)
    conf = torch.empty(M)
    step = max(1, max_elements // max(T, 1))
    sf, si = s_frame.to(dev), s_idx.to(dev)
    for j in torch.nonzero(counts).squeeze(1).tolist():  # large: one matmul per target frame
        rows = torch.nonzero(t_frame == j).squeeze(1)
        kj = tgt[j]  # [T, D]
        for a in range(0, rows.numel(), step):
            r = rows[a:a + step]
            rd = r.to(dev)
            # gather this chunk's source rows straight from the features (one copy, not two)
            logits = (src[sf[rd], si[rd]] @ kj.T) * logit_scale  # [m, T]
            best, arg = logits.max(dim=1)
            pred[r] = arg.cpu()
            conf[r] = (1.0 / torch.exp((logits - best[:, None]) / temperature).sum(dim=1)).float().cpu()
    return Matches(pred=pred, gt=gt, pair=pair_of, conf=conf)


def hits_within(pred: torch.Tensor, gt: torch.Tensor, cols: int, r: int) -> torch.Tensor:
    """bool [M]: is ``pred`` within Chebyshev distance ``r`` of ``gt`` on a grid of ``cols``
    columns (both row-major token indices)?"""
    if r == 0:
        return pred == gt
    dr = (pred // cols - gt // cols).abs()
    dc = (pred % cols - gt % cols).abs()
    return torch.maximum(dr, dc) <= r


def chance_within(gt: torch.Tensor, rows: int, cols: int, r: int) -> torch.Tensor:
    """float [M]: probability that a uniformly random token of a rows x cols frame lands within
    Chebyshev ``r`` of each GT token (``1 / (rows*cols)`` for r=0; clipped at the borders)."""
    gr, gc = gt // cols, gt % cols
    nr = torch.clamp(gr + r, max=rows - 1) - torch.clamp(gr - r, min=0) + 1
    nc = torch.clamp(gc + r, max=cols - 1) - torch.clamp(gc - r, min=0) + 1
    return (nr * nc).float() / float(rows * cols)


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """float64 [N]: 1-based ranks of ``x`` [N], ties given their average rank."""
    x = x.reshape(-1)
    n = x.numel()
    order = torch.argsort(x, stable=True)
    xs = x[order]
    _, inverse, counts = torch.unique_consecutive(xs, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()  # last 1-based rank of each tie group
    avg = ends - (counts.double() - 1) / 2
    ranks = torch.empty(n, dtype=torch.float64)
    ranks[order] = avg[inverse]
    return ranks


def spearman(x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    """Spearman rank correlation of ``x`` and ``y`` ([N] each) with average ranks for ties.

    Returns ``(rho, n)``; when it is undefined (N < 2 or a constant variable) ``(nan, 0)``, so
    that a value is NaN exactly when its n is 0."""
    x = x.reshape(-1).double()
    y = y.reshape(-1).double()
    if x.numel() != y.numel():
        raise ValueError(f"x/y: expected the same length, got {x.numel()} and {y.numel()}")
    if x.numel() < 2:
        return float("nan"), 0
    rx, ry = average_ranks(x), average_ranks(y)
    rx = rx - rx.mean()
    ry = ry - ry.mean()
    den = torch.sqrt((rx * rx).sum() * (ry * ry).sum())
    if float(den) == 0.0:
        return float("nan"), 0
    return float((rx * ry).sum() / den), int(x.numel())
