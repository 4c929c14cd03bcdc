"""Oracle "models": the geometric upper bound (``oracle:xyz``) and the chance floor (``oracle:random``).

They are adapter-like objects (``token_grid``, ``capture`` yielding :class:`LayerCapture`, one per
layer ``vision``, ``llm.0`` ...) on a regular token grid (16x16 per frame by default; write
``oracle:xyz:24x24`` for another grid), so the probe runs them through exactly the same code as a
real VLM. Both need the scene, which the runner hands over through :meth:`OracleAdapter.set_scene`
before capturing (the one optional adapter hook the probe knows about).

``oracle:xyz`` — each token's feature is its box centre's 3D world point (from
:func:`gaspprobe.scenes.token_world_points`), presented so that the probe's similarity ranks
tokens geometrically:

- hidden mode (cosine, one symmetric feature per token): ``f(x) = (x - m, c, 0)`` with ``m`` the
  scene's mean token point and ``c = 8 * max |x - m|``. Then ``cos(f(x), f(y)) = 1 - |x - y|^2 /
  (2 c^2) + O((|x - m| / c)^4)``, so the cosine nearest neighbour is the nearest world point.
  Tokens with no valid depth get ``(0, 0, 0, 0, 1)``: cosine 0 to every valid token, never
  predicted. This is NOT exactly 1 at r=0: the GT target is the box that *contains* the source
  point's projection, and on surfaces seen obliquely (floors, walls at an angle) the token whose
  *centre's* 3D point is nearest is a neighbour of that box for points within ~1 px of a box edge:
  on the synthetic rooms about 0.88-0.91 at r=0 at any grid size, and >= 0.999 at r=1;
- attention mode (q/k, asymmetric, the exact bound): the query of a source token is its world
  point projected into every frame k of the clip, ``q = [(u_k, v_k, 1) for k in frames]``
  (normalised pixel-centre coordinates; zeros where the point is behind camera k or has no
  depth), and the key of a target token of frame j is its own box centre c in block j,
  ``k = [0, ..., (2 c_x, 2 c_y, -|c|^2), ..., 0]``. So ``q . k = |p|^2 - |p - c|^2`` with p the
  source's projection into frame j: the argmax is the target box centre nearest to p, i.e. the
  box containing p on a regular grid: exactly the GT rule, so it scores 1 at r=0 unless the
  geometry, the token grid or the pair/index bookkeeping is wrong (what it is designed to catch).

``oracle:random`` — every token of every layer gets independent Gaussian features (seeded by the
recipe seed, the scene name and the layer), so its accuracy is chance (1 / tokens per frame)
within sampling noise.
"""

from __future__ import annotations

import zlib
from typing import Iterator, Sequence

import torch

from gaspprobe.errors import ModelError
from gaspprobe.models.adapter import LayerCapture, TokenGrid, layer_names


class OracleAdapter:
    """An adapter-like oracle (see the module docstring). ``kind`` is ``"xyz"`` or ``"random"``."""

    processor = None
    model = None

    def __init__(self, kind: str, *, rows: int = 16, cols: int = 16, num_layers: int = 1,
                 seed: int = 0, dim: int = 64):
        if kind not in ("xyz", "random"):
            raise ModelError(f"unknown oracle {kind!r}; supported: oracle:xyz, oracle:random")
        self.kind = kind
        self.rows, self.cols = int(rows), int(cols)
        self._num_layers = int(num_layers)
        self.seed = int(seed)
        self.dim = int(dim)
        self.model_id = f"oracle:{kind}"
        self.last_grid: TokenGrid | None = None
        self._scene = None
        # attention logits are used as they are (the q/k above are already in the units we want)
        self.attention_scale = 1.0

    @property
    def num_layers(self) -> int:
        return self._num_layers

    @property
    def hidden_size(self) -> int:
        return 5 if self.kind == "xyz" else self.dim

    def layer_names(self) -> list[str]:
        return layer_names(self._num_layers)

    def token_grid(self, frame_size: tuple[int, int], n_frames: int) -> TokenGrid:
        return TokenGrid.regular(n_frames, self.rows, self.cols, tuple(frame_size))

    def set_scene(self, scene) -> None:
        """The scene whose frames the next :meth:`capture` receives (geometry for ``xyz``)."""
        self._scene = scene

    def capture(self, frames: torch.Tensor, *, mode: str = "hidden", layers: Sequence[str] | None = None,
                per_frame: bool = False) -> Iterator[LayerCapture]:
        if self._scene is None:
            raise ModelError(f"{self.model_id}: set_scene(scene) must be called before capture")
        scene = self._scene
        F, H, W = int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2])
        if (F, H, W) != (scene.num_frames, *scene.size):
            raise ModelError(f"{self.model_id}: frames {(F, H, W)} do not belong to the scene set "
                             f"with set_scene ({(scene.num_frames, *scene.size)})")
        grid = self.token_grid((H, W), F)
        self.last_grid = grid
        names = self.layer_names() if layers is None else list(layers)
        unknown = [n for n in names if n not in self.layer_names()]
        if unknown:
            raise ModelError(f"{self.model_id}: unknown layers {unknown}; known: {self.layer_names()}")
        if self.kind == "xyz":
            from gaspprobe.scenes import token_world_points

            xyz, valid = token_world_points(scene, grid)
            for name in names:
                if mode == "hidden":
                    yield _xyz_capture(name, xyz.float(), valid.bool(), mode)
                else:
                    yield _projection_capture(name, scene, grid, xyz, valid.bool())
        else:
            base = zlib.crc32(str(scene.name).encode()) ^ (self.seed * 1000003)
            for li, name in enumerate(self.layer_names()):
                if name not in names:
                    continue
                g = torch.Generator().manual_seed((base + 7919 * li) & 0x7FFFFFFF)
                shape = (F, self.rows, self.cols, self.dim)
                if mode == "hidden":
                    yield LayerCapture(name, feats=torch.randn(shape, generator=g))
                else:
                    yield LayerCapture(name, query=torch.randn(shape, generator=g),
                                       key=torch.randn(shape, generator=g))

    def generate(self, batch, *, max_new_tokens: int = 16, do_sample: bool = False) -> list[str]:
        raise ModelError(f"{self.model_id} is a probe oracle: it has no language model to generate with")


def _xyz_capture(name: str, xyz: torch.Tensor, valid: torch.Tensor, mode: str) -> LayerCapture:
    """Lift world points xyz [F,r,c,3] (valid [F,r,c]) to oracle features (module docstring)."""
    if valid.any():
        m = xyz[valid].mean(0)
        radius = float((xyz[valid] - m).norm(dim=-1).max())
    else:
        m, radius = torch.zeros(3), 1.0
    x = torch.where(valid[..., None], xyz - m, torch.zeros_like(xyz))
    ones = torch.ones_like(x[..., :1])
    if mode == "hidden":
        c = 8.0 * max(radius, 1e-6)
        f = torch.cat([x, c * ones, 0 * ones], -1)
        f = torch.where(valid[..., None], f, torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0]))
        return LayerCapture(name, feats=f)
    q = torch.cat([x, ones], -1)
    sq = (x * x).sum(-1, keepdim=True)
    # an invalid target gets a logit far below any valid one; an invalid source is never a GT source
    far = -1e6 * max(radius, 1.0) ** 2
    k = torch.where(valid[..., None], torch.cat([2 * x, -sq], -1),
                    torch.cat([torch.zeros_like(x), far * ones], -1))
    return LayerCapture(name, query=q, key=k)


def _projection_capture(name: str, scene, grid: TokenGrid, xyz: torch.Tensor,
                        valid: torch.Tensor) -> LayerCapture:
    """Attention-mode oracle (module docstring): q = projections of each token's world point into
    every frame, k = each token's own box centre in its frame's block."""
    F, R, C = grid.shape
    H, W = scene.size
    s = float(max(H, W))
    X = xyz.reshape(-1, 3).double()                                     # [N, 3], N = F*R*C
    c2w = scene.cam_to_world.double()
    Rw, tw = c2w[:, :3, :3], c2w[:, :3, 3]                              # camera -> world
    Xc = torch.einsum("kba,knb->kna", Rw, X[None] - tw[:, None])         # [F, N, 3] in camera k
    z = Xc[..., 2]
    uvw = torch.einsum("kab,knb->kna", scene.K.double(), Xc)
    ok = (z > 1e-9) & valid.reshape(1, -1)
    uv = torch.where(ok[..., None], uvw[..., :2] / z.clamp_min(1e-9)[..., None], torch.zeros_like(uvw[..., :2])) / s
    q = torch.cat([uv, ok[..., None].double()], -1)                    # [F(k), N, 3]
    q = q.permute(1, 0, 2).reshape(F, R, C, 3 * F)
    cen = (grid.boxes[..., :2] + grid.boxes[..., 2:]).double() / 2 - 0.5   # pixel-centre coords
    cen = cen / s                                                       # [F, R, C, 2]
    blk = torch.cat([2 * cen, -(cen * cen).sum(-1, keepdim=True)], -1)  # [F, R, C, 3]
    k = torch.zeros(F, R, C, F, 3, dtype=torch.float64)
    k[torch.arange(F), ..., torch.arange(F), :] = blk
    return LayerCapture(name, query=q.float(), key=k.reshape(F, R, C, 3 * F).float())


def make_oracle(spec: str, *, seed: int = 0) -> OracleAdapter:
    """Build an oracle from ``"oracle:xyz"``, ``"oracle:random"`` or ``"oracle:KIND:ROWSxCOLS"``."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] != "oracle":
        raise ModelError(f"bad oracle spec {spec!r}; expected oracle:xyz, oracle:random or oracle:xyz:16x16")
    rows = cols = 16
    if len(parts) == 3:
        try:
            rows, cols = (int(v) for v in parts[2].lower().split("x"))
        except ValueError:
            raise ModelError(f"bad oracle grid {parts[2]!r} in {spec!r}; expected ROWSxCOLS, e.g. 16x16") from None
        if rows < 1 or cols < 1:
            raise ModelError(f"bad oracle grid {parts[2]!r} in {spec!r}: rows and cols must be >= 1")
    return OracleAdapter(parts[1], rows=rows, cols=cols, seed=seed)
