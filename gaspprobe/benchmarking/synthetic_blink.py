"""Synthetic BLINK questions (the four spatial subtasks) about rendered scenes, in BLINK's exact row
schema and one parquet per subtask config, as ``BLINK-Benchmark/BLINK`` lays them out.

Every subtask a scene folder can answer exactly is written:

- ``Multi-view_Reasoning``: two frames; BLINK's question text (the camera circles the scene:
  clockwise = left, counter-clockwise = right, seen from above). The answer is the side the second
  camera centre lies on in the first camera's frame (OpenCV x: negative = left); a pair is kept
  only when that sideways move is at least :data:`MV_MIN_SHIFT` of the baseline and the heading
  turns the matching way by at least ``ANGLE_MARGIN`` degrees (moving left while circling turns the
  camera right, clockwise seen from above), so the motion is an orbit and the answer unambiguous.
- ``Visual_Correspondence``: a REF point circled in the first frame; four labelled candidates in
  the second; the answer is the pixel the REF point's ground-truth match lands on
  (:func:`gaspprobe.scenes.correspondence.patch_matches`: in the image and within its 5% depth
  tolerance); distractors lie at
  least :data:`SEP` of the shorter image side from it and from each other.
- ``Relative_Depth``: two circled points A and B in one frame; the closer one is closer both in
  z-depth and in ray distance, by a factor of at least :data:`DEPTH_RATIO`.
- ``Spatial_Relation`` (needs instance maps): "Is the X on the left/right of the Y?", yes/no, from
  the objects' pixel masks: asked only when one mask lies wholly left of the other.

Every marked point sits on a locally flat patch (depth varies < 3% in the 5x5 window), at least
:data:`BORDER` of the shorter side from the image border. Circles are red, labels beside them,
drawn with PIL (as BLINK's images carry their marks); the geometry uses the unmarked frame.
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np

from gaspprobe.benchmarking.synthetic_geometry import ANGLE_MARGIN, MIN_PIXELS, signed_angle_deg

SUBTASKS = ("Multi-view_Reasoning", "Visual_Correspondence", "Relative_Depth", "Spatial_Relation")
Q_MULTIVIEW = ("The images are frames from a video. The video is shooting a static scene. The camera is either "
               "moving clockwise (left) or counter-clockwise (right) around the object. The first image is from "
               "the beginning of the video and the second image is from the end. Is the camera moving left or "
               "right when shooting the video?")
Q_CORRESPONDENCE = ("A point is circled on the first image, labeled with REF. We change the camera position or "
                    "lighting and shoot the second image. You are given multiple red-circled points on the second "
                    "image, choices of \"A, B, C, D\" are drawn beside each circle. Which point on the second image "
                    "corresponds to the point in the first image?")
Q_DEPTH = ("Two points are circled on the image, labeled by A and B beside each circle. Which point is closer to "
           "the camera?")
Q_SPATIAL = "Is the {a} on the {side} of the {b}?"

MV_MIN_SHIFT = 0.5   # sideways share of the camera baseline for a left/right question
DEPTH_RATIO = 1.2    # the farther point is at least this much farther
SEP = 0.15           # marked points at least this share of the shorter side apart
BORDER = 0.08        # and this far from the border
FLAT = 0.03          # local depth spread allowed at a marked point
RED = (255, 0, 0)


def _prompt(question: str, choices: Sequence[str]) -> str:
    return question + "\nSelect from the following choices.\n" + "\n".join(
        f"({'ABCD'[k]}) {c}" for k, c in enumerate(choices))


def _row(sub: str, question: str, choices: list[str], answer: int, images: list[Any], frames: list[int],
         marks: Sequence[tuple[int, float, float, str]] = ()) -> dict:
    """One BLINK row; ``_frames`` (the scene frames shown) and ``_marks`` ((image index, u, v,
    label) of each drawn circle) are kept beside it for checks and never written."""
    imgs = list(images) + [None] * (4 - len(images))
    return {"question": question, "sub_task": sub, "image_1": imgs[0], "image_2": imgs[1], "image_3": imgs[2],
            "image_4": imgs[3], "choices": list(choices), "answer": f"({'ABCD'[answer]})",
            "prompt": _prompt(question, choices), "_frames": list(frames),
            "_marks": [(int(k), float(u), float(v), str(lab)) for k, u, v, lab in marks]}


def _flat_mask(depth: np.ndarray, H: int, W: int) -> np.ndarray:
    """bool [H, W]: pixels usable as marks (valid depth, locally flat, away from the border)."""
    d = np.asarray(depth, dtype=np.float64)
    pad = np.pad(d, 2, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, (5, 5))  # [H, W, 5, 5]
    lo, hi = win.min(axis=(-1, -2)), win.max(axis=(-1, -2))
    ok = (lo > 0) & ((hi - lo) <= FLAT * lo)
    b = int(np.ceil(BORDER * min(H, W)))
    ok[:b], ok[-b:], ok[:, :b], ok[:, -b:] = False, False, False, False
    return ok


def _pixels(mask: np.ndarray) -> np.ndarray:
    """[N, 2] (u, v) of a mask's pixels, row-major."""
    v, u = np.nonzero(mask)
    return np.stack([u, v], -1)


def _ray(scene, f: int, uv: np.ndarray) -> np.ndarray:
    """Camera-frame 3D points [N, 3] of pixels uv [N, 2] of frame f (pixel-centre coordinates)."""
    import torch

    from gaspprobe.scenes.geometry import unproject

    uvt = torch.as_tensor(uv, dtype=torch.float64)
    d = torch.as_tensor(np.asarray(scene.depth[f], dtype=np.float64)[uv[:, 1], uv[:, 0]])
    return unproject(uvt, d, torch.as_tensor(scene.K[f], dtype=torch.float64)).numpy()


def _draw(rgb: np.ndarray, marks: Sequence[tuple[float, float, str]]) -> dict:
    """The frame with red circles and their labels, as the HF Image struct {bytes: PNG, path}."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    H, W = rgb.shape[:2]
    r = max(4, round(0.025 * min(H, W)))
    draw = ImageDraw.Draw(im)
    try:
        font = ImageFont.load_default(size=max(10, round(0.05 * min(H, W))))
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    for u, v, label in marks:
        draw.ellipse([u - r, v - r, u + r, v + r], outline=RED, width=max(1, r // 3))
        tx = u + r + 1 if u + r + 1 + 4 * r < W else u - r - 1 - 4 * r
        draw.text((tx, max(0, v - 2 * r)), label, fill=RED, font=font)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def _plain(rgb: np.ndarray) -> dict:
    return _draw(rgb, [])


def _pick(rng: np.random.Generator, n: int, k: int) -> list[int]:
    return sorted(int(x) for x in rng.choice(n, size=min(k, n), replace=False)) if n else []


def _multiview(scene, rng, per_type: int) -> list[dict]:
    c2w = np.asarray(scene.cam_to_world, dtype=np.float64)
    F = len(c2w)
    cands = []
    for i, j in itertools.combinations(range(F), 2):
        t = np.linalg.inv(c2w[i]) @ np.append(c2w[j][:3, 3], 1.0)  # camera j's centre in camera i's frame
        base = np.linalg.norm(t[:3])
        if base < 1e-6 or abs(t[0]) < MV_MIN_SHIFT * base:
            continue
        fi, fj = c2w[i][:3, 2], c2w[j][:3, 2]  # optical axes in the world (z-up)
        turn = float(signed_angle_deg(fi[:2], fj[:2]))  # + = turned left (counter-clockwise from above)
        left = t[0] < 0
        if abs(turn) < ANGLE_MARGIN or (turn < 0) != left:
            continue
        cands.append((i, j, left))
    rows = []
    for k in _pick(rng, len(cands), per_type):
        i, j, left = cands[k]
        rows.append(_row("Multi-view_Reasoning", Q_MULTIVIEW, ["left", "right"], 0 if left else 1,
                         [_plain(np.asarray(scene.rgb[i])), _plain(np.asarray(scene.rgb[j]))], [i, j]))
    return rows


def _far_from(pts: np.ndarray, chosen: list[np.ndarray], sep: float) -> np.ndarray:
    ok = np.ones(len(pts), dtype=bool)
    for c in chosen:
        ok &= np.linalg.norm(pts - c[None], axis=1) >= sep
    return ok


def _correspondence(scene, rng, per_type: int, flat: list[np.ndarray], masks: list[np.ndarray]) -> list[dict]:
    """REF pixels carried to the other frame by the probe's own ground truth
    (:func:`gaspprobe.scenes.correspondence.patch_matches` with one-pixel source boxes and every pixel
    of frame j as a target box), so visibility is the same 5% depth test."""
    import torch

    from gaspprobe.scenes.correspondence import patch_matches, regular_boxes

    H, W = scene.size
    pixel_boxes = regular_boxes(H, W, (H, W))
    sep = SEP * min(H, W)
    F = scene.num_frames
    pairs = [(i, j) for i, j in itertools.permutations(range(F), 2)]
    rows = []
    for k in rng.permutation(len(pairs)):
        if len(rows) >= per_type:
            break
        i, j = pairs[int(k)]
        if len(flat[i]) == 0 or len(flat[j]) < 4:
            continue
        cand = flat[i][rng.choice(len(flat[i]), size=min(64, len(flat[i])), replace=False)]
        src = torch.as_tensor(np.concatenate([cand, cand + 1], 1), dtype=torch.float32)  # one-pixel boxes
        m = patch_matches(scene, i, j, (src, pixel_boxes))
        tgt = np.stack([(m.tgt % W).numpy(), (m.tgt // W).numpy()], -1)  # (u, v) of each visible match
        keep = masks[j][tgt[:, 1], tgt[:, 0]]  # landing on a markable pixel of frame j
        good, tgt = m.src.numpy()[keep], tgt[keep]
        if not len(good):
            continue
        k_good = int(rng.integers(len(good)))
        n, true = int(good[k_good]), tgt[k_good].astype(float)
        chosen = [true]
        pool = flat[j].astype(float)
        for _ in range(3):
            ok = np.nonzero(_far_from(pool, chosen, sep))[0]
            if not len(ok):
                break
            chosen.append(pool[ok[int(rng.integers(len(ok)))]])
        if len(chosen) < 4:
            continue
        order = rng.permutation(4)  # order[k] = which chosen point gets letter k
        answer = int(np.nonzero(order == 0)[0][0])
        ref = [(cand[n, 0], cand[n, 1], "REF")]
        marks = [(chosen[order[k]][0], chosen[order[k]][1], "ABCD"[k]) for k in range(4)]
        rows.append(_row("Visual_Correspondence", Q_CORRESPONDENCE, [f"Point {c}" for c in "ABCD"], answer,
                         [_draw(np.asarray(scene.rgb[i]), ref), _draw(np.asarray(scene.rgb[j]), marks)], [i, j],
                         [(0, *m) for m in ref] + [(1, *m) for m in marks]))
    return rows


def _relative_depth(scene, rng, per_type: int, flat: list[np.ndarray]) -> list[dict]:
    H, W = scene.size
    sep = SEP * min(H, W)
    rows = []
    for f in rng.permutation(scene.num_frames):
        if len(rows) >= per_type:
            break
        f = int(f)
        if len(flat[f]) < 2:
            continue
        pts = flat[f][rng.choice(len(flat[f]), size=min(64, len(flat[f])), replace=False)]
        xyz = _ray(scene, f, pts)
        z, dist = xyz[:, 2], np.linalg.norm(xyz, axis=1)
        found = None
        for a, b in itertools.combinations(range(len(pts)), 2):
            if np.linalg.norm(pts[a] - pts[b]) < sep:
                continue
            rz, rd = z[a] / z[b], dist[a] / dist[b]
            if (rz >= DEPTH_RATIO and rd >= DEPTH_RATIO) or (rz <= 1 / DEPTH_RATIO and rd <= 1 / DEPTH_RATIO):
                found = (a, b)
                break
        if found is None:
            continue
        a, b = found if rng.uniform() < 0.5 else found[::-1]
        answer = 0 if z[a] < z[b] else 1  # A is closer / B is closer
        marks = [(pts[a, 0], pts[a, 1], "A"), (pts[b, 0], pts[b, 1], "B")]
        rows.append(_row("Relative_Depth", Q_DEPTH, ["A is closer", "B is closer"], answer,
                         [_draw(np.asarray(scene.rgb[f]), marks)], [f], [(0, *m) for m in marks]))
    return rows


def _spatial(scene, rng, per_type: int, min_pixels: int) -> list[dict]:
    if scene.instance is None or not scene.objects:
        return []
    objs = list(scene.objects)
    classes = [o.cls for o in objs]
    uniq = [k for k in range(len(objs)) if classes.count(classes[k]) == 1]
    cands = []
    for f in range(scene.num_frames):
        inst = np.asarray(scene.instance[f])
        cols = {}
        for k in uniq:
            _, u = np.nonzero(inst == objs[k].id)
            if len(u) >= min_pixels:
                cols[k] = (int(u.min()), int(u.max()))
        for a, b in itertools.permutations(sorted(cols), 2):
            if cols[a][1] < cols[b][0]:  # a wholly left of b
                cands.append((f, a, b))
    rows = []
    for k in _pick(rng, len(cands), per_type):
        f, a, b = cands[k]
        side, yes = ("left", True) if rng.uniform() < 0.5 else ("right", False)
        rows.append(_row("Spatial_Relation", Q_SPATIAL.format(a=classes[a], side=side, b=classes[b]),
                         ["yes", "no"], 0 if yes else 1, [_plain(np.asarray(scene.rgb[f]))], [f]))
    return rows


def blink_rows(scenes: Sequence, seed: int, per_type: int, min_pixels: int = MIN_PIXELS) -> dict[str, list[dict]]:
    """``{subtask config: rows}`` in BLINK's schema (``idx`` = ``val_<config>_<n>``, 1-based per
    config, in scene order); a subtask no scene can answer gets no rows."""
    out: dict[str, list[dict]] = {s: [] for s in SUBTASKS}
    for k, s in enumerate(scenes):
        rng = np.random.default_rng([seed, k])
        H, W = s.size
        masks = [_flat_mask(np.asarray(s.depth[f]), H, W) for f in range(s.num_frames)]
        flat = [_pixels(mk) for mk in masks]
        got = {"Multi-view_Reasoning": _multiview(s, rng, per_type),
               "Visual_Correspondence": _correspondence(s, rng, per_type, flat, masks),
               "Relative_Depth": _relative_depth(s, rng, per_type, flat),
               "Spatial_Relation": _spatial(s, rng, per_type, min_pixels)}
        for sub, rows in got.items():
            for r in rows:
                out[sub].append({"idx": f"val_{sub}_{len(out[sub]) + 1}", **r})
    return out


BLINK_COLUMNS = ("idx", "question", "sub_task", "image_1", "image_2", "image_3", "image_4", "choices", "answer",
                 "prompt")


def blink_features():
    """BLINK's HF features (Image columns are ``struct<bytes, path>`` in the parquet)."""
    import datasets

    S, IMG = datasets.Value("string"), datasets.Image()
    return datasets.Features({"idx": S, "question": S, "sub_task": S, "image_1": IMG, "image_2": IMG,
                              "image_3": IMG, "image_4": IMG, "choices": datasets.Sequence(S), "answer": S,
                              "prompt": S})
