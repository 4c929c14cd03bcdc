"""Token grids against independent expectations: paint a box, see which token's features change.

For every registered family: (1) hand-computed cases (frame size, painted pixel rectangle ->
expected frame/row/col, worked out from the processor's documented resize/crop/merge rules in the
comments below, not from the adapter), and (2) a registry-driven contract test: paint the box the
grid names for two random tokens, the two tokens whose ``vision`` features change most must be
exactly those. ``vision`` is the projector output, where a painted patch changes its own token far
more than any other (the towers mix tokens only through attention).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gaspprobe.models.registry import supported
from gaspprobe.models.testing import tiny_adapter

pytestmark = pytest.mark.slow


def background(F: int, H: int, W: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour frames (bilinear upsampled 5x5 noise), uint8 [F,H,W,3]."""
    rs = np.random.RandomState(seed)
    out = [np.asarray(Image.fromarray(rs.randint(60, 190, (5, 5, 3)).astype(np.uint8)).resize((W, H), Image.BILINEAR))
           for _ in range(F)]
    return np.stack(out)


def vision_delta(ad, base: np.ndarray, painted: np.ndarray) -> torch.Tensor:
    """||vision(painted) - vision(base)|| per token, [F, rows, cols]."""
    (a,) = list(ad.capture(base, layers=["vision"]))
    (b,) = list(ad.capture(painted, layers=["vision"]))
    return (b.feats - a.feats).norm(dim=-1)


# (frame H, W), n_frames, [(frame, (x0, y0, x1, y1) painted pixel rect, expected (row, col))]
HAND: dict[str, list] = {
    # Qwen2/2.5: max_pixels 224*224. 448x448 -> 224x224 -> 8x8 merged tokens of 56 orig px.
    # 300x500 (HxW): smart_resize -> 168x280 -> 6x10 tokens, each 50x50 orig px.
    "qwen2_5_vl": [((448, 448), 2, [(0, (130, 70, 160, 100), (1, 2)), (1, (300, 400, 330, 430), (7, 5))]),
                   ((300, 500), 1, [(0, (260, 160, 290, 190), (3, 5))])],
    "qwen2_vl": [((448, 448), 2, [(0, (130, 70, 160, 100), (1, 2)), (1, (300, 400, 330, 430), (7, 5))]),
                 ((300, 500), 1, [(0, (260, 160, 290, 190), (3, 5))])],
    # Qwen3: patch 16, max_pixels 256*256. 448x448 -> 256x256 -> 8x8 tokens of 56 orig px.
    # 300x500: h=round(300/32)*32=288, w=512 -> too many; beta=sqrt(150000/65536)=1.513 ->
    # h=floor(6.20)*32=192, w=floor(10.33)*32=320 -> 6x10 tokens of 50x50 orig px.
    "qwen3_vl": [((448, 448), 2, [(0, (130, 70, 160, 100), (1, 2)), (1, (300, 400, 330, 430), (7, 5))]),
                 ((300, 500), 1, [(0, (260, 160, 290, 190), (3, 5))])],
    # LLaVA-1.5: shortest edge -> 112, centre crop 112x112, 14-px patches -> 8x8.
    # 448x448: 8x8 tokens of 56 orig px. 300x500: resized 112x186 (int(112*500/300)), crop left
    # (186-112)//2 = 37; col c covers resized x [37+14c, 51+14c) = orig x * 186/500, so col 4 is
    # orig x [250, 287.6); rows cover 300/8 = 37.5 px, row 4 = [150, 187.5). Orig x < 99.5 is cropped
    # away: painting there changes no token at all (expected None).
    "llava": [((448, 448), 2, [(0, (130, 70, 160, 100), (1, 2)), (1, (300, 400, 330, 430), (7, 5))]),
              ((300, 500), 1, [(0, (256, 160, 282, 185), (4, 4)), (0, (10, 100, 80, 140), None)])],
    # LLaVA-OneVision, several frames: pad to square (mean colour, centred), resize to 112 -> 8x8.
    # 448x448: 56-px cells. 300x500: square 500, frame at y offset 100, cells of 62.5 px: frame
    # (x 260..290, y 160..185) -> padded y 260..285 -> (4, 4); (x 10..40, y 30..55) -> padded y
    # 130..155 -> (2, 0). One frame: anyres; 448x448 -> best pinpoint 224x224 -> 2x2 tiles of 112
    # -> 16x16 tokens of 28 orig px: (x 120..136, y 60..80) -> (2, 4).
    "llava_onevision": [((448, 448), 2, [(0, (130, 70, 160, 100), (1, 2)), (1, (300, 400, 330, 430), (7, 5))]),
                        ((300, 500), 2, [(0, (260, 160, 290, 185), (4, 4)), (1, (10, 30, 40, 55), (2, 0))]),
                        ((448, 448), 1, [(0, (120, 60, 136, 80), (2, 4))])],
    # Idefics3: longest edge -> 224, sides rounded up to multiples of the 112 tile, 2x2 tiles of
    # 4x4 tokens (+ a global view outside the grid). 448x448: 8x8 tokens of 56 px. 300x500 ->
    # 134x224 -> 224x224 (squash) -> 8x8 tokens of 62.5 (x) by 37.5 (y) px: (x 260..290, y 160..185)
    # -> (4, 4).
    "idefics3": [((448, 448), 2, [(0, (130, 70, 160, 100), (1, 2)), (1, (300, 400, 330, 430), (7, 5))]),
                 ((300, 500), 1, [(0, (260, 160, 290, 185), (4, 4))])],
}


@pytest.mark.parametrize("arch", sorted(HAND))
def test_hand_computed_marker_tokens(arch):
    ad = tiny_adapter(arch)
    for (H, W), F, paints in HAND[arch]:
        base = background(F, H, W)
        painted = base.copy()
        colours = [(255, 0, 255), (0, 255, 255)]
        for k, (f, (x0, y0, x1, y1), _) in enumerate(paints):
            painted[f, y0:y1, x0:x1] = colours[k % 2]
        delta = vision_delta(ad, base, painted)
        grid = ad.last_grid
        for f, (x0, y0, x1, y1), rc in paints:
            if rc is None:  # a region no token covers (cropped away): nothing may change
                assert delta.max() < 1e-4 or len(paints) > 1
                continue
            r, c = rc
            # the model: the painted token is the one that changes most in its frame
            got = divmod(int(delta[f].argmax()), delta.shape[2])
            assert got == (r, c), f"{arch} {H}x{W} frame {f}: most-changed token {got}, expected {(r, c)}"
            # the grid: that token's box contains the painted rectangle
            bx0, by0, bx1, by1 = grid.boxes[f, r, c].tolist()
            assert bx0 <= x0 and by0 <= y0 and x1 <= bx1 and y1 <= by1, (arch, grid.boxes[f, r, c])
        if all(rc is None for *_, rc in paints):
            assert delta.max() < 1e-4
        # nothing else moves much: unpainted frames are untouched by construction of the towers
        untouched = sorted(set(range(F)) - {p[0] for p in paints})
        for f in untouched:
            assert delta[f].max() < 1e-4


@pytest.mark.parametrize("arch", supported())
@pytest.mark.parametrize("frame_size,n_frames", [((448, 448), 3), ((280, 420), 2), ((300, 500), 1)])
def test_grid_named_boxes_are_the_tokens_that_change(arch, frame_size, n_frames):
    ad = tiny_adapter(arch)
    H, W = frame_size
    base = background(n_frames, H, W, seed=1)
    grid = ad.token_grid((H, W), n_frames)
    rs = np.random.RandomState(hash((arch, H)) % 2**31)
    F, R, C = grid.shape
    chosen = []
    b = grid.boxes
    inside = (b[..., 0] >= 0) & (b[..., 1] >= 0) & (b[..., 2] <= W) & (b[..., 3] <= H)  # not padding
    while len(chosen) < 2:
        t = (int(rs.randint(F)), int(rs.randint(R)), int(rs.randint(C)))
        if t not in chosen and inside[t]:
            chosen.append(t)
    painted = base.copy()
    for k, (f, r, c) in enumerate(chosen):
        x0, y0, x1, y1 = grid.boxes[f, r, c].tolist()
        # the inner half of the box, so no pixel of a neighbouring token is touched
        mx, my = (x1 - x0) / 4, (y1 - y0) / 4
        xs = slice(int(np.ceil(x0 + mx)), int(np.floor(x1 - mx)))
        ys = slice(int(np.ceil(y0 + my)), int(np.floor(y1 - my)))
        painted[f, ys, xs] = [(255, 0, 255), (0, 255, 0)][k]
    delta = vision_delta(ad, base, painted)
    assert ad.last_grid.shape == grid.shape
    assert torch.equal(ad.last_grid.boxes, grid.boxes)
    top2 = delta.reshape(-1).topk(2).indices.tolist()
    got = {tuple(np.unravel_index(i, delta.shape)) for i in top2}
    assert got == set(chosen), f"{arch}: top changed tokens {got}, grid named {chosen}"


@pytest.mark.parametrize("arch", supported())
def test_grid_boxes_are_inside_the_frame_and_ordered(arch):
    ad = tiny_adapter(arch)
    g = ad.token_grid((240, 400), 2)
    b = g.boxes
    assert b.shape[-1] == 4 and g.seq_index.shape == b.shape[:3]
    if not g.extra.get("padded"):  # padding families (OneVision) have border tokens that cover padding
        assert (b[..., 0] >= 0).all() and (b[..., 1] >= 0).all() and (b[..., 2] <= 400).all() and (b[..., 3] <= 240).all()
    else:
        # the tokens still tile the whole frame (plus padding around it)
        assert b[..., 0].min() <= 0 and b[..., 1].min() <= 0 and b[..., 2].max() >= 400 and b[..., 3].max() >= 240
    assert (b[..., 2] > b[..., 0]).all() and (b[..., 3] > b[..., 1]).all()
    # row-major: x grows along columns, y along rows; sequence positions unique and increasing per frame
    assert (b[:, :, 1:, 0] >= b[:, :, :-1, 2] - 1e-4).all()
    assert (b[:, 1:, :, 1] >= b[:, :-1, :, 3] - 1e-4).all()
    # sequence positions: unique, and frame f's tokens all come before frame f+1's (tiled layouts,
    # e.g. Idefics3, are not row-major inside a frame)
    s = g.seq_index.reshape(-1)
    assert s.unique().numel() == s.numel() and (s >= 0).all()
    assert g.seq_index[0].max() < g.seq_index[1].min()


def test_onevision_anyres_with_bilinear_shrink():
    """Pinpoints up to 4x4 tiles: 448x448 -> 32x32 cells > 9 tiles' worth -> the model shrinks to 24x24."""
    ad = tiny_adapter("llava_onevision", fresh=True)
    pins = [[112 * a, 112 * b] for a in range(1, 5) for b in range(1, 5)]
    ad.model.config.image_grid_pinpoints = pins
    ad.processor.image_processor.image_grid_pinpoints = pins
    g = ad.token_grid((448, 448), 1)
    assert g.shape == (1, 24, 24) and g.extra["layout"] == "anyres"
    # 32 cells of 14 px over a 448-px canvas, shrunk to 24: each token spans 448/24 frame px
    torch.testing.assert_close(g.boxes[0, 0, :, 2] - g.boxes[0, 0, :, 0], torch.full((24,), 448 / 24))
    base = background(1, 448, 448, seed=4)
    painted = base.copy()
    x0, y0, x1, y1 = g.boxes[0, 10, 17].tolist()
    painted[0, int(y0) + 5:int(y1) - 5, int(x0) + 5:int(x1) - 5] = (255, 0, 255)
    delta = vision_delta(ad, base, painted)
    assert divmod(int(delta[0].argmax()), 24) == (10, 17)
