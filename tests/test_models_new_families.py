"""New model families at their real checkpoints' processor and vision geometry: token counts and grids.

Independent expectation: every frame is gradient-coded (red = x, green = y of the pixel centre,
blue = 255 on real pixels, so padding decodes as weight 0; odd frames run x backwards, so a token
taken from the wrong frame is caught). The test decodes, from the processed ``pixel_values`` the
model receives, the mean (x, y) under each vision patch, follows the MODEL's own code (its
``pack_image_features`` / pixel shuffle / pooling, or a hand-written reading of the tile order) from
patches to sequence positions, and compares with the adapter's boxes: the centre of the part of
each box inside the frame must be within 0.10 token of the decoded centre. The token count the
processor emits must equal the grid's tokens plus its listed non-spatial tokens.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

SIZES = [(448, 448), (480, 640), (968, 1296), (640, 480)]  # (H, W); the last is portrait
TOL = 0.10  # tokens


def coded_frames(n: int, H: int, W: int) -> np.ndarray:
    """uint8 [n,H,W,3]: R = 255*(x+.5)/W (reversed on odd frames), G = 255*(y+.5)/H, B = 255."""
    u = (np.arange(W) + 0.5) / W
    v = (np.arange(H) + 0.5) / H
    out = np.empty((n, H, W, 3), np.uint8)
    for f in range(n):
        uu = u if f % 2 == 0 else 1 - u
        out[f, :, :, 0] = np.round(255 * uu)[None, :]
        out[f, :, :, 1] = np.round(255 * v)[:, None]
        out[f, :, :, 2] = 255
    return out


def unnormalize(pv: torch.Tensor, ip) -> torch.Tensor:
    """Processed pixels [..., 3, h, w] back to 0..255."""
    mean = torch.tensor(ip.image_mean, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(ip.image_std, dtype=torch.float64).view(3, 1, 1)
    return (pv.double() * std + mean) * 255.0


def patch_sums(img: torch.Tensor, p: int) -> torch.Tensor:
    """[..., 3, h, w] (0..255) -> [..., h//p, w//p, 3] sums of R, G, B over each p x p patch (crop to p)."""
    h, w = img.shape[-2] // p * p, img.shape[-1] // p * p
    x = img[..., :h, :w].unflatten(-1, (w // p, p)).unflatten(-3, (h // p, p))  # [...,3,gh,p,gw,p]
    return x.sum((-1, -3)).movedim(-3, -1)


def sums_to_uvw(s: torch.Tensor) -> torch.Tensor:
    """Patch sums [..., 3] -> (u, v, valid fraction); u, v in [0, 1] of the frame."""
    n = s[..., 2].clamp_min(1e-9)
    return torch.stack([s[..., 0] / n, s[..., 1] / n, s[..., 2]], -1)


def check_grid(grid, seq_uvw: dict[int, torch.Tensor], frame_size, *, boxes=None, seq_index=None,
               frame_of=None, min_valid=0.5) -> float:
    """Max error (tokens) between box centres (inside the frame) and decoded centres.

    ``seq_uvw``: sequence position -> (u, v, valid) decoded for that token (u already un-reversed
    for the frame that the test decoded it from is NOT done here: pass ``frame_of`` position -> f)."""
    H, W = frame_size
    boxes = grid.boxes if boxes is None else boxes
    seq_index = grid.seq_index if seq_index is None else seq_index
    b = boxes.reshape(-1, 4).double()
    s = seq_index.reshape(-1)
    frames = torch.arange(seq_index.shape[0]).repeat_interleave(seq_index[0].numel()) if seq_index.dim() == 3 \
        else torch.zeros_like(s)
    worst, n = 0.0, 0
    for k in range(s.numel()):
        pos = int(s[k])
        u, v, valid = (float(x) for x in seq_uvw[pos])
        if valid < min_valid:
            continue
        f = int(frames[k])
        src_f = frame_of[pos] if frame_of is not None else f
        if src_f % 2 == 1:
            u = 1 - u
        x0, y0, x1, y1 = (float(t) for t in b[k])
        cx = (max(x0, 0) + min(x1, W)) / 2
        cy = (max(y0, 0) + min(y1, H)) / 2
        err = max(abs(u * W - cx) / (x1 - x0), abs(v * H - cy) / (y1 - y0))
        worst = max(worst, err)
        n += 1
    assert n > 0.5 * s.numel(), f"only {n} of {s.numel()} tokens were checked"
    return worst


def image_positions(ad, inputs) -> torch.Tensor:
    return (inputs["input_ids"][0] == ad.image_token_id).nonzero().squeeze(-1)


def covered(grid) -> torch.Tensor:
    """Every sequence position the grid accounts for (spatial + listed extras), sorted."""
    parts = [grid.seq_index.reshape(-1)]
    for key, val in grid.extra.items():
        if isinstance(val, dict) and "seq_index" in val:
            parts.append(val["seq_index"].reshape(-1))
        elif isinstance(val, torch.Tensor) and val.dtype == torch.long and key in ("newline", "separators"):
            parts.append(val.reshape(-1))
    return torch.cat(parts).sort().values


def assert_counts(ad, inputs, grid):
    pos = image_positions(ad, inputs)
    cov = covered(grid)
    assert cov.numel() == pos.numel(), f"grid covers {cov.numel()} tokens, the processor emitted {pos.numel()}"
    assert torch.equal(cov, pos.sort().values)


# ---------------------------------------------------------------------------------------------- families
_BUILT: dict = {}


def adapter(arch: str):
    from gaspprobe.models.registry import adapter_class

    if arch not in _BUILT:
        cls = adapter_class(arch)
        model, proc = cls.build_tiny_parts(0)
        _BUILT[arch] = cls(model, proc, model_id=f"tiny-{arch}")
    return _BUILT[arch]


def llava_next_expected(ad, inputs, n_frames):
    """Decode the anyres tiles of every image and pack them with the MODEL's pack_image_features."""
    from gaspprobe.models.base import _unwrap

    inner = _unwrap(ad.model).model
    p = int(ad.model.config.vision_config.patch_size)
    pv = unnormalize(inputs["pixel_values"], ad.processor.image_processor)  # [F, 1+tiles, 3, S, S]
    out = []
    for f in range(n_frames):
        uvw = patch_sums(pv[f], p)  # [1+tiles, g, g, 3]
        feats = sums_to_uvw(uvw).reshape(uvw.shape[0], -1, 3)
        nl = torch.tensor([float("nan")] * 3, dtype=torch.float64)
        packed, _ = inner.pack_image_features([feats], inputs["image_sizes"][f:f + 1], "default", image_newline=nl)
        out.append(packed[0])
    return torch.cat(out)


def internvl_expected(ad, inputs, n_frames):
    """Decode every 448-px tile's 14-px patches and merge them with the MODEL's pixel_shuffle."""
    from gaspprobe.models.base import _unwrap

    inner = _unwrap(ad.model).model
    p = int(ad.model.config.vision_config.patch_size[0])
    pv = unnormalize(inputs["pixel_values"], ad.processor.image_processor)  # [tiles (all frames), 3, T, T]
    sums = patch_sums(pv, p)  # [tiles, 32, 32, 3]
    shuf = inner.pixel_shuffle(sums.contiguous(), scale_factor=float(ad.model.config.downsample_ratio))  # [t,16,16,12]
    merged = shuf.unflatten(-1, (-1, 3)).sum(-2)
    return sums_to_uvw(merged).reshape(-1, 3)


def smolvlm_expected(ad, inputs, n_frames):
    """Decode every tile's 14-px patches (the conv sees floor(384/14) = 27) and merge them with the
    MODEL's connector pixel shuffle."""
    from gaspprobe.models.base import _unwrap

    inner = _unwrap(ad.model).model
    p = int(ad.model.config.vision_config.patch_size)
    pv = unnormalize(inputs["pixel_values"][0], ad.processor.image_processor)  # [views (all frames), 3, T, T]
    sums = patch_sums(pv, p)  # [views, 27, 27, 3]
    flat = sums.reshape(sums.shape[0], -1, 3).contiguous()
    shuf = inner.connector.pixel_shuffle(flat, scale_factor=int(ad.model.config.scale_factor))  # [views, 81, 27]
    return sums_to_uvw(shuf.unflatten(-1, (-1, 3)).sum(-2)).reshape(-1, 3)


def gemma3_expected(ad, inputs, n_frames):
    """Decode the 14-px patches of each 896-px image and pool them with the MODEL's projector pooling."""
    from gaspprobe.models.base import _unwrap

    proj = _unwrap(ad.model).model.multi_modal_projector
    p = int(ad.model.config.vision_config.patch_size)
    pv = unnormalize(inputs["pixel_values"], ad.processor.image_processor)  # [F, 3, 896, 896]
    sums = patch_sums(pv, p)  # [F, 64, 64, 3]
    pooled = proj.avg_pool(sums.movedim(-1, 1)).movedim(1, -1)  # [F, 16, 16, 3]
    return sums_to_uvw(pooled).reshape(-1, 3)


def paligemma_expected(ad, inputs, n_frames):
    """One token per 14-px patch of each squashed image, in raster order."""
    p = int(ad.model.config.vision_config.patch_size)
    pv = unnormalize(inputs["pixel_values"], ad.processor.image_processor)  # [F, 3, S, S]
    return sums_to_uvw(patch_sums(pv, p)).reshape(-1, 3)


def glm4v_expected(ad, inputs, n_frames):
    """The processor's flat patches (C, T, p, p each), four consecutive ones per token as the vision
    model's ``view(-1, merge, merge, C)`` + downsample convolution takes them."""
    ip = ad.processor.image_processor
    m, p, t = int(ip.merge_size), int(ip.patch_size), int(ip.temporal_patch_size)
    pv = inputs["pixel_values"].reshape(-1, 3, t * p, p)
    sums = unnormalize(pv, ip).sum((-1, -2))  # [patches, 3]
    return sums_to_uvw(sums.reshape(-1, m * m, 3).sum(1))


EXPECTED = {
    "llava_next": llava_next_expected,
    "llava_next_video": llava_next_expected,
    "internvl": internvl_expected,
    "smolvlm": smolvlm_expected,
    "gemma3": gemma3_expected,
    "paligemma": paligemma_expected,
    "glm4v": glm4v_expected,
}


@pytest.mark.parametrize("arch", list(EXPECTED))
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_grid_matches_decoded_pixels(arch, size):
    ad = adapter(arch)
    H, W = size
    n = 2 if H * W <= 640 * 480 else 1
    frames = coded_frames(n, H, W)
    inputs, grid, idx = ad.prepare_capture(frames)
    assert grid.shape[0] == n and grid.frame_size == (H, W)
    assert_counts(ad, inputs, grid)
    dec = EXPECTED[arch](ad, inputs, n)
    pos = image_positions(ad, inputs)
    assert dec.shape[0] == pos.numel()
    seq_uvw = {int(q): dec[i] for i, q in enumerate(pos)}
    err = check_grid(grid, seq_uvw, (H, W))
    assert err <= TOL, f"{arch} {size}: grid off by {err:.3f} token"
    for key in ("base", "global", "thumbnail"):
        ex = grid.extra.get(key)
        if isinstance(ex, dict) and "boxes" in ex:
            si = ex["seq_index"]
            bx = ex["boxes"].expand(si.shape[0], *ex["boxes"].shape) if ex["boxes"].dim() == 3 else ex["boxes"]
            e2 = check_grid(grid, seq_uvw, (H, W), boxes=bx, seq_index=si)
            assert e2 <= TOL, f"{arch} {size}: {key} view off by {e2:.3f} token"


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_capture_shapes(arch):
    ad = adapter(arch)
    frames = coded_frames(2, 240, 320)
    grid = ad.token_grid((240, 320), 2)
    got = {}
    for cap in ad.capture(frames):
        got[cap.name] = tuple(cap.feats.shape)
        assert torch.isfinite(cap.feats).all()
        # image tokens of different pixels differ (a zero-initialised projector would make them equal)
        flat = cap.feats.reshape(-1, cap.feats.shape[-1])
        assert (flat - flat[0]).abs().amax(-1).gt(1e-4).float().mean() > 0.9, cap.name
    F, R, C = grid.shape
    assert list(got) == ad.layer_names()
    assert set(got.values()) == {(F, R, C, ad.hidden_size)}
    # per_frame: a batch of one-frame samples (the processor must pair images with prompts per sample)
    caps = list(ad.capture(frames, per_frame=True, layers=["vision", "llm.0"]))
    g1 = ad.token_grid((240, 320), 1)
    assert [c.name for c in caps] == ["vision", "llm.0"]
    assert ad.last_grid.shape == (2, g1.rows, g1.cols)
    assert torch.equal(ad.last_grid.boxes[1], g1.boxes[0])
    assert caps[0].feats.shape == (2, g1.rows, g1.cols, ad.hidden_size)


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_saved_tiny_reloads_with_same_grid(arch, tmp_path):
    """build_tiny -> gaspprobe.models.load (the hub-checkpoint path) gives the same processor geometry."""
    from gaspprobe.models.loading import load
    from gaspprobe.models.tiny import build_tiny

    ad = load(build_tiny(arch, tmp_path / arch), dtype="float32")
    ref = adapter(arch)
    assert type(ad) is type(ref)
    for size in ((480, 640), (640, 480)):
        g, r = ad.token_grid(size, 1), ref.token_grid(size, 1)
        assert torch.equal(g.boxes, r.boxes) and torch.equal(g.seq_index, r.seq_index)


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_training_facts_name_real_modules(arch):
    """language_model_path, projector/vision keys and the LoRA pattern point at the model's own modules."""
    import re

    from gaspprobe.models.base import _getattr_path

    ad = adapter(arch)
    spec = ad.spec
    lm = _getattr_path(ad.model, spec.language_model_path)
    assert ad.decoder_layers() is lm.layers
    names = [n for n, _ in ad.model.named_parameters()]
    proj = [n for n in names if any(k in n for k in spec.projector_keys)]
    vis = [n for n in names if any(k in n for k in spec.vision_keys) and n not in proj]
    assert proj and vis
    assert not any(spec.language_model_name + "." in n for n in proj + vis)
    lora = [n for n, _ in ad.model.named_modules() if re.fullmatch(spec.lora_targets, n)]
    assert len(lora) == len(spec.lora_modules) * len(lm.layers)


def _with_processor(arch, **image_processor_attrs):
    """The cached tiny adapter's model with a copy of its processor, image processor attributes changed."""
    import copy

    ad = adapter(arch)
    proc = copy.deepcopy(ad.processor)
    for k, v in image_processor_attrs.items():
        setattr(proc.image_processor, k, v)
    return type(ad)(ad.model, proc, model_id=ad.model_id)


def test_gemma3_pan_and_scan_is_refused_in_one_line():
    from gaspprobe.errors import ModelError

    ad = _with_processor("gemma3", do_pan_and_scan=True, pan_and_scan_min_crop_size=256,
                         pan_and_scan_max_num_crops=4, pan_and_scan_min_ratio_to_activate=1.2)
    # the image processor's attribute alone does nothing: Gemma3Processor's call default
    # (do_pan_and_scan=False) outranks it, so the frame is one 16x16 view and nothing is refused
    assert ad.pixels["image_splitting"] is False and ad.image_tokens((480, 960), 1) == 256
    assert ad.token_grid((480, 960), 1).shape == (1, 16, 16)
    # switched on where it takes effect (the processor's call default), it is refused in one line
    ad.processor.images_kwargs = {**ad.processor.images_kwargs, "do_pan_and_scan": True}
    with pytest.raises(ModelError, match="pan-and-scan \\(image_splitting\\) is on") as e:
        ad.token_grid((480, 960), 1)
    assert "\n" not in str(e.value)


def test_llava_next_processor_pinpoints_must_match_the_model():
    from gaspprobe.errors import ModelError

    ad = _with_processor("llava_next", image_grid_pinpoints=[[336, 336], [672, 672]])
    with pytest.raises(ModelError, match="image_grid_pinpoints") as e:
        ad.token_grid((480, 640), 1)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_hub_style_folder_loads_through_autoprocessor_or_the_image_only_fallback(arch, tmp_path):
    """A folder laid out like a hub checkpoint (real processor class name, no gaspprobe metadata):
    ``load`` goes through AutoProcessor and, where the real processor needs a video processor
    (torchvision), falls back to the family's image-only processor."""
    import json

    from gaspprobe.models.loading import load
    from gaspprobe.models.tiny import META_FILE, build_tiny

    d = build_tiny(arch, tmp_path / arch)
    (d / META_FILE).unlink()
    real = adapter(arch).spec.processor_class
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        f = d / name
        if f.exists():
            j = json.loads(f.read_text())
            if "processor_class" in j:
                j["processor_class"] = real
                f.write_text(json.dumps(j))
    ad = load(d, dtype="float32")
    want = {real, *(filter(None, [(ad.spec.image_only_processor or "").rsplit(":", 1)[-1]]))}
    assert type(ad.processor).__name__ in want
    ref = adapter(arch).token_grid((480, 640), 1)
    assert torch.equal(ad.token_grid((480, 640), 1).boxes, ref.boxes)


@pytest.mark.parametrize("arch,attrs", [
    ("internvl", {"max_patches": 1}),  # one 448 view per frame, no thumbnail
    ("smolvlm", {"do_image_splitting": False}),  # one 384 view per frame
    ("smolvlm", {"size": {"longest_edge": 768}}),  # a smaller pixel budget: fewer tiles
    ("llava_next", {"image_grid_pinpoints": [[336, 336]]}),  # checked against the model config: refused
], ids=lambda x: x if isinstance(x, str) else "-".join(map(str, x)))
def test_grid_follows_the_processor_settings(arch, attrs):
    """Token-budget settings change the layout; the grid follows the processor (or refuses)."""
    from gaspprobe.errors import ModelError

    ad = _with_processor(arch, **attrs)
    H, W = 480, 640
    frames = coded_frames(2, H, W)
    if arch == "llava_next":
        with pytest.raises(ModelError):
            ad.prepare_capture(frames)
        return
    inputs, grid, _ = ad.prepare_capture(frames)
    assert_counts(ad, inputs, grid)
    dec = EXPECTED[arch](ad, inputs, 2)
    pos = image_positions(ad, inputs)
    err = check_grid(grid, {int(q): dec[i] for i, q in enumerate(pos)}, (H, W))
    assert err <= TOL
    full = adapter(arch).token_grid((H, W), 1)
    assert grid.tokens_per_frame < full.tokens_per_frame
