"""The linear depth probe: ridge regression from a layer's image-token features to log patch depth.

Per layer, a ridge regression ``log d ~ w . x + b`` is fitted in closed form on the tokens of the
*training* scenes and scored on the tokens of the *held-out* scenes (AbsRel = mean |d_hat - d| / d,
delta1 = fraction with max(d_hat/d, d/d_hat) < 1.25, with d_hat = exp(w . x + b)).

Because layers stream one at a time, the fit never holds features: :class:`RidgeStats` accumulates
the sufficient statistics (n, sum x, sum y, X^T X, X^T y) in float64 as each scene's layer goes by;
:meth:`RidgeStats.solve` then centres them (the bias is not penalised) and solves
``(S_xx + lambda' I) w = S_xy`` with ``lambda' = lambda * trace(S_xx) / D`` so the same ``lambda``
means the same relative shrinkage at every layer whatever its feature scale. Memory: one
(D x D) float64 matrix per layer during the training scenes (D=3584, 29 layers: ~3 GB; the
tiny models: negligible). Tokens whose patch has no valid depth (0) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class RidgeStats:
    """Sufficient statistics of a ridge regression, accumulated batch by batch.

    The statistics are of ``x - shift`` (``shift`` = the first batch's mean), which removes the
    cancellation that large constant feature components (common in LLM residual streams) would
    cause when centring; the fitted weights are unchanged by the shift. Products are float64 for
    D <= 1024; wider features multiply in float32 (about 2x faster) and accumulate in float64.
    The statistics live on the device of the first batch (a GPU when the model runs on one).
    """

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.n = 0
        self.shift: torch.Tensor | None = None
        self.gram_dtype = torch.float64 if self.dim <= 1024 else torch.float32
        self.sy = 0.0
        self.sx = self.xtx = self.xty = None

    def _alloc(self, device) -> None:
        kw = dict(dtype=torch.float64, device=device)
        self.sx = torch.zeros(self.dim, **kw)
        self.xtx = torch.zeros(self.dim, self.dim, **kw)
        self.xty = torch.zeros(self.dim, **kw)

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add samples ``x`` float [N, D] with targets ``y`` float [N]."""
        x = x.reshape(-1, self.dim).double()
        y = y.reshape(-1).double().to(x.device)
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x/y: expected the same number of rows, got {x.shape[0]} and {y.shape[0]}")
        if x.shape[0] == 0:
            return
        if self.shift is None:
            self._alloc(x.device)
            self.shift = x.mean(0)
        x = x.to(self.shift.device)
        y = y.to(self.shift.device)
        x = x - self.shift
        self.n += int(x.shape[0])
        self.sx += x.sum(0)
        self.sy += float(y.sum())
        xg = x.to(self.gram_dtype)
        self.xtx += (xg.T @ xg).double()
        self.xty += x.T @ y

    def solve(self, lam: float) -> "tuple[torch.Tensor, float] | None":
        """Ridge weights ``(w [D] float64, b)`` with relative penalty ``lam``; None if n < 2."""
        if self.n < 2:
            return None
        mx = self.sx / self.n
        my = self.sy / self.n
        sxx = self.xtx - self.n * torch.outer(mx, mx)
        sxy = self.xty - self.n * mx * my
        scale = float(torch.diagonal(sxx).mean().clamp_min(0.0))
        reg = lam * scale if scale > 0 else lam
        a = sxx + (reg if reg > 0 else 1e-12 * max(scale, 1.0)) * torch.eye(
            self.dim, dtype=torch.float64, device=sxx.device)
        try:
            w = torch.linalg.solve(a, sxy)
        except RuntimeError:  # singular even with the tiny jitter (e.g. lam=0 and constant features)
            w = torch.linalg.lstsq(a, sxy[:, None]).solution[:, 0]
        b = my - float((mx + self.shift) @ w)
        return w, b


@dataclass
class DepthScore:
    """Depth-probe scores over n tokens (NaN with n=0)."""

    absrel: float
    delta1: float
    n: int


def depth_scores(pred: torch.Tensor, gt: torch.Tensor) -> DepthScore:
    """AbsRel and delta<1.25 of predicted depths ``pred`` vs ``gt`` (metres, [N]; gt>0 used)."""
    pred = pred.reshape(-1).double()
    gt = gt.reshape(-1).double()
    ok = gt > 0
    pred, gt = pred[ok], gt[ok]
    if gt.numel() == 0:
        return DepthScore(float("nan"), float("nan"), 0)
    absrel = float(((pred - gt).abs() / gt).mean())
    ratio = torch.maximum(pred / gt, gt / pred)
    return DepthScore(absrel, float((ratio < 1.25).double().mean()), int(gt.numel()))


def predict_depth(feats: torch.Tensor, w: torch.Tensor, b: float) -> torch.Tensor:
    """Depth in metres from features ``feats`` [..., D]: exp(w . x + b), shape [...]."""
    return torch.exp(feats.double() @ w.to(feats.device) + b)


def valid_tokens(feats: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten ``feats`` [F, rows, cols, D] and ``depth`` [F, rows, cols] to the tokens with valid
    (> 0) depth: (x [N, D], depth [N])."""
    x = feats.reshape(-1, feats.shape[-1])
    d = depth.reshape(-1).to(x.device)
    ok = d > 0
    return x[ok], d[ok]


def scale_invariant_target(d: torch.Tensor) -> torch.Tensor:
    """Log depth with the scene's mean log depth removed: the ridge target of a scene whose depth is
    known only up to a scale (``Scene.metric`` False), so scenes of different scales agree."""
    y = torch.log(d)
    return y - y.mean() if y.numel() else y


def median_align(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``pred`` scaled so its median matches ``gt``'s (the standard evaluation of depth known up to
    scale): AbsRel and delta1 then measure relative depth only."""
    if not pred.numel():
        return pred
    return pred * (gt.double().median() / pred.double().median().clamp_min(1e-12))
