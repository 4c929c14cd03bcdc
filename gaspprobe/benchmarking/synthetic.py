"""Synthetic spatial benchmarks written in the exact schema and file layout of the real ones.

Start at :func:`synthesize` (``gaspprobe bench synthesize --scenes DIR --out DATA --format ...``).

``format="vsibench"`` writes ``test-00000-of-00001.parquet`` (VSI-Bench columns and dtypes) and one
video per scene at ``synthetic/{scene_name}.mp4`` (all frames, PyAV H.264), so the VSI-Bench
adapter scores it unchanged. All 10 question types, with VSI-Bench's question templates (paper
Table 4): counts >= 2, sizes in cm, distances in m, room size in m^2, relative direction at three
difficulties, route plans with one or two "[please fill in]" turns, first-appearance order.

``format="allangles"`` writes ``data.json`` (All-Angles fields) and view images at
``{scene_name}/view{k}.png``: the six categories, each (but counting) with a paired version that
swaps the view reference, the orientation words or the rotation sense (paper §2.2). The
"manipulation" category is a proxy that tests cross-view object correspondence ("the X is in the
left part of View 1; where is it in View 2?"); the real category asks about hand-object
manipulation, which static synthetic scenes do not have.

Answers come from the scene annotations (objects, room, instance maps, camera poses) and exact
geometry; questions near a decision boundary are skipped (margins below), so every answer is
unambiguous. Distances are between the annotated 3D boxes (yaw about +z), as VSI-Bench derives
them from box annotations: d = sqrt(d_xy^2 + d_z^2) with d_xy the distance between the two
footprint rectangles (0 when they overlap) and d_z the gap between the height intervals.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gaspprobe import io
from gaspprobe.errors import DataError

VSI_FILE = "test-00000-of-00001.parquet"
VSI_DATASET = "synthetic"

T_COUNT = "How many {category}(s) are in this room?"
T_ABS_DIST = ("Measuring from the closest point of each object, what is the direct distance between the {a} "
              "and the {b} (in meters)?")
T_SIZE = ("What is the length of the longest dimension (length, width, or height) of the {category}, "
          "measured in centimeters?")
T_ROOM = ("What is the size of this room (in square meters)? If multiple rooms are shown, estimate the size "
          "of the combined space.")
T_REL_DIST = ("Measuring from the closest point of each object, which of these objects ({choices}) is the "
              "closest to the {category}?")
T_DIR_EASY = ("If I am standing by the {p} and facing the {o}, is the {q} to the left or the right of the {o}?")
T_DIR_MEDIUM = ("If I am standing by the {p} and facing the {o}, is the {q} to my left, right, or back? An object "
                "is to my back if I would have to turn at least 135 degrees in order to face it.")
T_DIR_HARD = ("If I am standing by the {p} and facing the {o}, is the {q} to my front-left, front-right, "
              "back-left, or back-right? The directions refer to the quadrants of a Cartesian plane (if I am "
              "standing at the origin and facing along the positive y-axis).")
T_ORDER = "What will be the first-time appearance order of the following categories in the video: {cats}?"
T_ROUTE_HEAD = ("You are a robot beginning at the {start} and facing the {first}. You want to navigate to the "
                "{goal}. You will perform the following actions (Note: for each [please fill in], choose either "
                "'turn back,' 'turn left,' or 'turn right.'): ")
TURNS = ("Turn Back", "Turn Left", "Turn Right")

# decision margins (degrees / metres): questions closer than this to a boundary are not asked
ANGLE_MARGIN = 12.0
DIST_MARGIN = 0.15
MIN_DIST = 0.3
MIN_PIXELS = 20


# --------------------------------------------------------------------------- geometry (batched torch)
def box_corners_xy(objects: Sequence[Any]):
    """Footprint corners of yawed boxes. Returns float64 tensor [O, 4, 2] (counter-clockwise)."""
    import torch

    c = torch.tensor([o.center[:2] for o in objects], dtype=torch.float64).reshape(-1, 2)
    h = torch.tensor([o.size[:2] for o in objects], dtype=torch.float64).reshape(-1, 2) / 2
    yaw = torch.tensor([o.yaw for o in objects], dtype=torch.float64)
    sgn = torch.tensor([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=torch.float64)  # [4, 2]
    local = sgn[None] * h[:, None]  # [O, 4, 2]
    cs, sn = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]
    x = cs * local[..., 0] - sn * local[..., 1]
    y = sn * local[..., 0] + cs * local[..., 1]
    return torch.stack([x, y], -1) + c[:, None]


def _point_segment_dist(p, a, b):
    """Distances from points p [..., 2] to segments a->b [..., 2] (broadcast)."""
    import torch

    ab = b - a
    t = ((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-18)
    q = a + t.clamp(0, 1)[..., None] * ab
    return torch.linalg.norm(p - q, dim=-1)


def pairwise_box_distances(objects: Sequence[Any]):
    """Closest-point distances between every pair of yawed 3D boxes. Returns float64 [O, O] (0 on
    the diagonal and for touching/overlapping boxes)."""
    import torch

    P = box_corners_xy(objects)  # [O, 4, 2]
    A, B = P, P.roll(-1, dims=1)  # edges [O, 4, 2]
    # vertex (of i) to edge (of j) distances: [O_i, O_j, 4 vertices, 4 edges]
    d_ij = _point_segment_dist(P[:, None, :, None, :], A[None, :, None, :, :], B[None, :, None, :, :])
    d_v2e = d_ij.flatten(2).amin(-1)  # [O, O]
    dxy = torch.minimum(d_v2e, d_v2e.T)
    # separating-axis test: the footprints overlap when no edge normal separates them
    nrm = torch.stack([B[:, 0] - A[:, 0], B[:, 1] - A[:, 1]], 1)  # [O, 2 axes, 2]
    axes = torch.cat([nrm[:, None].expand(-1, len(P), -1, -1), nrm[None].expand(len(P), -1, -1, -1)], 2)  # [O,O,4,2]
    pi = torch.einsum("ikd,ijad->ijak", P, axes)  # projections of i's corners [O,O,4 axes,4]
    pj = torch.einsum("jkd,ijad->ijak", P, axes)
    sep = (pi.amax(-1) < pj.amin(-1)) | (pj.amax(-1) < pi.amin(-1))  # [O,O,4]
    dxy = torch.where(sep.any(-1), dxy, torch.zeros_like(dxy))
    z = torch.tensor([o.center[2] for o in objects], dtype=torch.float64)
    hz = torch.tensor([o.size[2] for o in objects], dtype=torch.float64) / 2
    lo, hi = z - hz, z + hz
    dz = (torch.maximum(lo[:, None], lo[None]) - torch.minimum(hi[:, None], hi[None])).clamp_min(0)
    d = torch.sqrt(dxy ** 2 + dz ** 2)
    d.fill_diagonal_(0.0)
    return d


def point_box_distances(points, objects: Sequence[Any]):
    """Distances from points [N, 3] (world) to yawed boxes. Returns float64 [N, O]."""
    import torch

    p = torch.as_tensor(points, dtype=torch.float64).reshape(-1, 3)
    c = torch.tensor([o.center for o in objects], dtype=torch.float64).reshape(-1, 3)
    h = torch.tensor([o.size for o in objects], dtype=torch.float64).reshape(-1, 3) / 2
    yaw = torch.tensor([o.yaw for o in objects], dtype=torch.float64)
    d = p[:, None] - c[None]  # [N, O, 3]
    cs, sn = torch.cos(yaw), torch.sin(yaw)
    lx = cs * d[..., 0] + sn * d[..., 1]  # rotate into the box frame (by -yaw)
    ly = -sn * d[..., 0] + cs * d[..., 1]
    local = torch.stack([lx, ly, d[..., 2]], -1).abs()
    return torch.linalg.norm((local - h[None]).clamp_min(0), dim=-1)


def signed_angle_deg(f, v):
    """Signed angle from 2D direction f to v in degrees, counter-clockwise seen from above (+z up):
    positive = to the left. f, v [..., 2]."""
    import torch

    f = torch.as_tensor(f, dtype=torch.float64)
    v = torch.as_tensor(v, dtype=torch.float64)
    cross = f[..., 0] * v[..., 1] - f[..., 1] * v[..., 0]
    dot = (f * v).sum(-1)
    return torch.rad2deg(torch.atan2(cross, dot))


def object_pixels(scene) -> "np.ndarray":
    """Pixels of each object per frame from the instance map: int64 [F, O] (columns = object order).
    Scenes without an instance map fall back to "centre projects inside the image" (1 px)."""
    import torch

    ids = [o.id for o in scene.objects]
    F = scene.num_frames
    if scene.instance is not None:
        inst = torch.as_tensor(scene.instance).long().reshape(F, -1)
        idt = torch.tensor(ids, dtype=torch.long)
        return (inst[:, None, :] == idt[None, :, None]).sum(-1).numpy()
    c = torch.tensor([o.center for o in scene.objects], dtype=torch.float64).reshape(-1, 3)
    pc = cam_points(scene.cam_to_world, c)  # [F, O, 3]
    uv = pixel_coords(pc, scene.K)
    z = pc[..., 2]
    H, W = scene.size
    ok = (z > 0) & (uv[..., 0] >= -0.5) & (uv[..., 0] < W - 0.5) & (uv[..., 1] >= -0.5) & (uv[..., 1] < H - 0.5)
    return ok.long().numpy() * MIN_PIXELS


def cam_points(cam_to_world, points):
    """World points [O, 3] in each camera's frame (OpenCV axes): float64 [F, O, 3].
    cam_to_world [F, 4, 4] is rigid, so world -> camera is R^T (p - t)."""
    import torch

    T = torch.as_tensor(cam_to_world, dtype=torch.float64)
    R, t = T[:, :3, :3], T[:, :3, 3]
    return torch.einsum("fji,foj->foi", R, torch.as_tensor(points, dtype=torch.float64)[None] - t[:, None])


def pixel_coords(pc, K):
    """Pixel coordinates (u, v) (integer pixel centres) of camera points pc [F, O, 3] with K [F, 3, 3]:
    float64 [F, O, 2] (meaningless where z <= 0)."""
    import torch

    K = torch.as_tensor(K, dtype=torch.float64)
    z = pc[..., 2].clamp_min(1e-9)
    u = K[:, None, 0, 0] * pc[..., 0] / z + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * pc[..., 1] / z + K[:, None, 1, 2]
    return torch.stack([u, v], -1)


# --------------------------------------------------------------------------- VSI questions
def _fmt(x: float, nd: int) -> str:
    return f"{x:.{nd}f}"


def _opts(texts: Sequence[str]) -> list[str]:
    return [f"{chr(65 + i)}. {t}" for i, t in enumerate(texts)]


def vsi_questions(scene, rng: np.random.Generator, per_type: int = 2, min_pixels: int = MIN_PIXELS) -> list[dict]:
    """Questions of all 10 VSI-Bench types about one scene (fewer when the scene does not allow a
    type unambiguously). Each dict has the VSI columns except ``id``/``dataset``/``scene_name``."""
    import torch

    objs = list(scene.objects)
    if not objs:
        return []
    pix = object_pixels(scene)  # [F, O]
    vis = (pix >= min_pixels).any(0)  # [O]
    classes = [o.cls for o in objs]
    uniq = [i for i, o in enumerate(objs) if classes.count(o.cls) == 1 and vis[i]]
    D = pairwise_box_distances(objs).numpy()
    xy = np.array([o.center[:2] for o in objs], dtype=np.float64)
    out: dict[str, list[dict]] = {}

    def add(qt: str, question: str, gt: str, options: list[str] | None = None):
        out.setdefault(qt, []).append({"question_type": qt, "question": question, "ground_truth": gt,
                                       "options": options})

    # counting: classes with >= 2 instances, every instance seen in the video
    for cls in sorted(set(classes)):
        idx = [i for i, c in enumerate(classes) if c == cls]
        if len(idx) >= 2 and all(vis[i] for i in idx):
            add("object_counting", T_COUNT.format(category=cls), str(len(idx)))
    # absolute distance between two unique objects (closest points)
    for i, j in itertools.combinations(uniq, 2):
        if D[i, j] >= MIN_DIST:
            add("object_abs_distance", T_ABS_DIST.format(a=classes[i], b=classes[j]), _fmt(D[i, j], 2))
    # size: longest box dimension in cm
    for i in uniq:
        add("object_size_estimation", T_SIZE.format(category=classes[i]), str(int(round(max(objs[i].size) * 100))))
    # room size
    room = scene.room or {}
    area = room.get("floor_area") or (room["size"][0] * room["size"][1] if "size" in room else None)
    if area:
        add("room_size_estimation", T_ROOM, _fmt(float(area), 1))
    # relative distance: which of 4 (or 3) candidates is closest to the target
    for t in uniq:
        cands = [c for c in uniq if c != t]
        if len(cands) < 3:
            continue
        pick = list(rng.choice(cands, size=min(4, len(cands)), replace=False))
        d = sorted(D[t, c] for c in pick)
        if d[1] - d[0] < DIST_MARGIN:
            continue
        best = min(pick, key=lambda c: D[t, c])
        names = [classes[c] for c in pick]
        add("object_rel_distance", T_REL_DIST.format(choices=", ".join(names), category=classes[t]),
            chr(65 + pick.index(best)), _opts(names))
    # relative direction (standing by p, facing o, where is q)
    for p, o, q in itertools.permutations(uniq, 3):
        f, v = xy[o] - xy[p], xy[q] - xy[p]
        if np.linalg.norm(f) < 0.5 or np.linalg.norm(v) < MIN_DIST:
            continue
        th = float(signed_angle_deg(torch.tensor(f), torch.tensor(v)))
        a = abs(th)
        names = dict(p=classes[p], o=classes[o], q=classes[q])
        if ANGLE_MARGIN <= a <= 180 - ANGLE_MARGIN:
            add("object_rel_direction_easy", T_DIR_EASY.format(**names), "A" if th > 0 else "B",
                _opts(["left", "right"]))
        if a >= ANGLE_MARGIN and abs(a - 135) >= ANGLE_MARGIN:
            gt = "C" if a >= 135 else ("A" if th > 0 else "B")
            add("object_rel_direction_medium", T_DIR_MEDIUM.format(**names), gt, _opts(["left", "right", "back"]))
        if min(a, abs(a - 90), 180 - a) >= ANGLE_MARGIN:
            quad = ("front" if a < 90 else "back") + ("-left" if th > 0 else "-right")
            hard = ["front-left", "front-right", "back-left", "back-right"]
            add("object_rel_direction_hard", T_DIR_HARD.format(**names), chr(65 + hard.index(quad)), _opts(hard))
    # route planning: walk start -> w1 (-> w2) -> goal, turning at each waypoint
    for path in itertools.permutations(uniq, 4 if len(uniq) >= 4 and rng.random() < 0.5 else 3):
        turns = []
        for k in range(1, len(path) - 1):
            h0, h1 = xy[path[k]] - xy[path[k - 1]], xy[path[k + 1]] - xy[path[k]]
            if min(np.linalg.norm(h0), np.linalg.norm(h1)) < 0.5:
                break
            th = float(signed_angle_deg(torch.tensor(h0), torch.tensor(h1)))
            if 60 < th < 120:
                turns.append("Turn Left")
            elif -120 < th < -60:
                turns.append("Turn Right")
            elif abs(th) > 150:
                turns.append("Turn Back")
            else:
                break
        if len(turns) != len(path) - 2:
            continue
        n = [classes[i] for i in path]
        steps, s = [f"1. Go forward until the {n[1]}"], 2
        for k in range(len(turns)):
            steps += [f"{s}. [please fill in]", f"{s + 1}. Go forward until the {n[k + 2]}"]
            s += 2
        question = T_ROUTE_HEAD.format(start=n[0], first=n[1], goal=n[-1]) + " ".join(steps) + \
            ". You have reached the final destination."
        if len(turns) == 1:
            texts = list(TURNS)
        else:
            combos = [", ".join(c) for c in itertools.product(TURNS, repeat=len(turns))]
            correct = ", ".join(turns)
            others = [c for c in combos if c != correct]
            texts = [correct] + [others[i] for i in rng.choice(len(others), size=3, replace=False)]
            texts = [texts[i] for i in rng.permutation(4)]
        add("route_planning", question, chr(65 + texts.index(", ".join(turns))), _opts(texts))
    # first-time appearance order of 4 unique categories
    if scene.instance is not None:
        first = {i: int(np.argmax(pix[:, i] >= min_pixels)) for i in uniq}
        for combo in itertools.combinations(uniq, 4):
            fr = [first[i] for i in combo]
            if len(set(fr)) < 4:
                continue
            order = [classes[i] for i in sorted(combo, key=lambda i: first[i])]
            perms = [list(pp) for pp in itertools.permutations(order) if list(pp) != order]
            texts = [order] + [perms[i] for i in rng.choice(len(perms), size=3, replace=False)]
            texts = [", ".join(texts[i]) for i in rng.permutation(4)]
            asked = [classes[i] for i in rng.permutation(list(combo))]
            add("obj_appearance_order", T_ORDER.format(cats=", ".join(asked)),
                chr(65 + texts.index(", ".join(order))), _opts(texts))
    rows: list[dict] = []
    for qt in sorted(out):
        qs = out[qt]
        keep = sorted(rng.choice(len(qs), size=min(per_type, len(qs)), replace=False))
        rows += [qs[k] for k in keep]
    return rows


# --------------------------------------------------------------------------- All-Angles questions
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")


def _aa_row(cat, question, options: list[str], answer_text: str, views: list[int], pair_idx=None) -> dict:
    return {"category": cat, "question": question, "A": options[0], "B": options[1], "C": options[2],
            "answer": "ABC"[options.index(answer_text)], "views": views, "pair_idx": pair_idx}


def allangles_questions(scene, view_idx: Sequence[int], rng: np.random.Generator, per_category: int = 2,
                        min_pixels: int = MIN_PIXELS) -> list[dict]:
    """All-Angles questions about one scene seen from the frames ``view_idx`` (View 1 = first).
    Returns dicts with ``category``, ``question``, ``A``-``C``, ``answer``, ``views`` (positions in
    ``view_idx``) and a local ``pair_idx`` (None for unpaired)."""
    import torch

    objs = list(scene.objects)
    V = len(view_idx)
    if not objs or V < 2:
        return []
    vi = list(view_idx)
    pix = object_pixels(scene)[vi]  # [V, O]
    vis = pix >= min_pixels
    classes = [o.cls for o in objs]
    uniq = [i for i in range(len(objs)) if classes.count(classes[i]) == 1]
    c2w = scene.cam_to_world[vi].double()
    cam = c2w[:, :3, 3].numpy()  # [V, 3]
    centers = torch.tensor([o.center for o in objs], dtype=torch.float64)
    pc = cam_points(c2w, centers)  # [V, O, 3]
    uv = pixel_coords(pc, scene.K[vi])
    W = scene.size[1]
    u = uv[..., 0].numpy() / max(W - 1, 1)  # [V, O] in [0, 1] when inside
    cands: dict[str, list[list[dict]]] = {}
    pid = itertools.count()

    def add(cat, rows):
        cands.setdefault(cat, []).append(rows)

    # counting: objects of a class seen in at least one view, each physical object counted once
    for cls in sorted(set(classes)):
        idx = [i for i, c in enumerate(classes) if c == cls and vis[:, i].any()]
        if not idx:
            continue
        n = len(idx)
        alts = [x for x in (n - 1, n + 1, n + 2) if x >= 1][:2]
        texts = [str(x) for x in rng.permutation([n] + alts)]
        add("counting", [_aa_row("counting", f"How many {cls}(s) can be seen across these views in total? "
                                 "Count each physical object once.", texts, str(n), list(range(V)))])
    from gaspprobe.scenes.synthetic import COLORS

    for a, b in itertools.permutations(range(V), 2):
        if a > b:
            continue
        both = [i for i in uniq if vis[a, i] and vis[b, i]]
        # attribute identification: colour of an object seen in both views; pair = other view named
        for i in both:
            others = [c for c in COLORS if c != objs[i].color]
            texts = [objs[i].color] + [others[k] for k in rng.choice(len(others), size=2, replace=False)]
            texts = [texts[k] for k in rng.permutation(3)]
            p = next(pid)
            add("attribute_identification", [
                _aa_row("attribute_identification", f"What is the color of the {classes[i]} in View {w}?",
                        texts, objs[i].color, [a, b], p) for w in (1, 2)])
        # relative distance to each view's camera; pair = the other view's camera
        seen = [i for i in uniq if vis[a, i] or vis[b, i]]
        for trio in itertools.combinations(seen, 3):
            trio = [trio[k] for k in rng.permutation(3)]
            dist = point_box_distances(cam[[a, b]], [objs[i] for i in trio]).numpy()  # [2, 3]
            srt = np.sort(dist, axis=1)
            if (srt[:, 1] - srt[:, 0]).min() < DIST_MARGIN * 2:
                continue
            texts = [classes[i] for i in trio]
            p = next(pid)
            add("relative_distance", [
                _aa_row("relative_distance", f"Which of these objects is closest to the camera that took View {w + 1}?",
                        texts, texts[int(np.argmin(dist[w]))], [a, b], p) for w in (0, 1)])
        # relative direction in View 1's image; pair = orientation words swapped
        for i, j in itertools.permutations([k for k in uniq if vis[a, k]], 2):
            du = u[a, i] - u[a, j]
            if abs(du) < 0.15 or pc[a, i, 2] <= 0 or pc[a, j, 2] <= 0:
                continue
            side = "left" if du < 0 else "right"
            p = next(pid)
            rows = []
            for w1, w2 in (("left", "right"), ("right", "left")):
                texts = [w1, w2, "directly above"]
                rows.append(_aa_row("relative_direction", f"In View 1, is the {classes[i]} to the {w1} or the {w2} "
                                    f"of the {classes[j]}?", texts, side, [a, b], p))
            add("relative_direction", rows)
        # manipulation proxy: where does an object seen in one view appear in the other
        for i in both:
            parts = []
            for w in (a, b):
                x = u[w, i]
                if min(abs(x - 1 / 3), abs(x - 2 / 3)) < 0.06 or not 0 <= x <= 1:
                    break
                parts.append("left part" if x < 1 / 3 else ("middle part" if x < 2 / 3 else "right part"))
            if len(parts) != 2:
                continue
            texts = ["left part", "middle part", "right part"]
            p = next(pid)
            add("manipulation", [
                _aa_row("manipulation", f"The {classes[i]} appears in the {parts[s]} of View {s + 1}. In which part of "
                        f"View {2 - s} does it appear?", texts, parts[1 - s], [a, b], p) for s in (0, 1)])
    # camera pose: cyclic order of >= 4 cameras seen from above; pair = the other rotation sense
    if V >= 4:
        xy = cam[:, :2]
        ctr = xy.mean(0)
        ang = np.degrees(np.arctan2(xy[:, 1] - ctr[1], xy[:, 0] - ctr[0]))
        rad = np.linalg.norm(xy - ctr, axis=1)
        gaps = np.sort(((ang[:, None] - ang[None]) % 360)[~np.eye(V, dtype=bool)])
        if rad.min() > 0.2 and gaps.min() >= 15 and (360 - gaps.max()) >= 15:
            cw = [0] + sorted(range(1, V), key=lambda k: (ang[0] - ang[k]) % 360)  # decreasing angle
            ccw = [0] + cw[1:][::-1]
            fmt = lambda order: ", ".join(f"View {k + 1}" for k in order)  # noqa: E731
            others = [fmt([0] + list(pp)) for pp in itertools.permutations(range(1, V))]
            others = [o for o in others if o not in (fmt(cw), fmt(ccw))]
            texts = [fmt(cw), fmt(ccw), others[int(rng.integers(len(others)))]]
            texts = [texts[k] for k in rng.permutation(3)]
            n = _NUMBERS[V] if V < len(_NUMBERS) else str(V)
            head = (", ".join(f"View {k + 1}" for k in range(V)) + f" are {n} different input camera views that "
                    "represent the same scene. Could you reconstruct the camera view layout from the top-bottom "
                    "view, and answer the following question? ")
            p = next(pid)
            add("camera_pose_estimation", [
                _aa_row("camera_pose_estimation", head + f"Seen from above, what is the {sense} order of the camera "
                        "views, starting from View 1?", texts, fmt(order), list(range(V)), p)
                for sense, order in (("clockwise", cw), ("counterclockwise", ccw))])
    rows: list[dict] = []
    for cat in sorted(cands):
        groups = cands[cat]
        for k in sorted(rng.choice(len(groups), size=min(per_category, len(groups)), replace=False)):
            rows += groups[k]
    return rows


# --------------------------------------------------------------------------- writers
def _load_scenes(scenes) -> list:
    if isinstance(scenes, (str, Path)):
        from gaspprobe.scenes import load_scenes

        return load_scenes(scenes)
    return list(scenes)


def synthesize(scenes, out: str | Path, *, format: str = "vsibench", seed: int = 0, per_type: int = 2,
               views: int = 4, fps: int = 10, min_pixels: int = MIN_PIXELS, frames: int | None = None) -> dict:
    """Write a synthetic benchmark about ``scenes`` (a folder or a list of :class:`Scene`) to ``out``.

    Args:
        format: "vsibench" (parquet + ``synthetic/{scene}.mp4``) or "allangles" (``data.json`` +
            ``{scene}/view{k}.png``).
        seed: seeds question sampling and option shuffling (same seed, same files).
        per_type: questions per question type (VSI) or category (All-Angles) per scene, at most.
        views: All-Angles views per scene (frames spread evenly over the scene's frames).
        fps: VSI video frame rate.
        min_pixels: an object counts as seen in a frame when it covers at least this many pixels.
        frames: keep only this many evenly spaced frames of each scene (a difficulty knob: fewer
            frames, sparser views); None keeps all. The number of objects and the camera motion are
            knobs of the scenes themselves (``gaspprobe scenes make`` / ``generate_scene``).
    Returns:
        ``{"n": questions, "per_type": {type: n}, "path": question file}``.
    """
    if format not in ("vsibench", "allangles"):
        raise DataError(f"format: expected 'vsibench' or 'allangles', got {format!r}")
    sc = _load_scenes(scenes)
    if frames is not None:
        if frames < 1:
            raise DataError(f"frames: expected a positive number, got {frames}")
        sc = [s.subset(sorted(set(int(i) for i in np.linspace(0, s.num_frames - 1, frames).round())))
              if s.num_frames > frames else s for s in sc]
    if not sc:
        raise DataError("no scenes to write questions about", path=str(scenes) if isinstance(scenes, (str, Path)) else None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if format == "vsibench":
        return _write_vsi(sc, out, seed, per_type, fps, min_pixels)
    return _write_allangles(sc, out, seed, per_type, views, min_pixels)


def _write_vsi(scenes, out: Path, seed: int, per_type: int, fps: int, min_pixels: int) -> dict:
    import pandas as pd

    from gaspprobe.benchmarking.video import write_video

    rows = []
    for k, s in enumerate(scenes):
        rng = np.random.default_rng([seed, k])
        qs = vsi_questions(s, rng, per_type=per_type, min_pixels=min_pixels)
        for q in qs:
            rows.append({"id": len(rows), "dataset": VSI_DATASET, "scene_name": s.name, **q})
        write_video(out / VSI_DATASET / f"{s.name}.mp4", np.asarray(s.rgb), fps=fps)
    df = pd.DataFrame(rows, columns=["id", "dataset", "scene_name", "question_type", "question", "ground_truth",
                                     "options"])
    df["id"] = df["id"].astype("int64")
    path = out / VSI_FILE
    with io.atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return {"n": len(df), "per_type": df["question_type"].value_counts().sort_index().to_dict(), "path": str(path)}


def _write_allangles(scenes, out: Path, seed: int, per_type: int, views: int, min_pixels: int) -> dict:
    from PIL import Image

    recs: list[dict] = []
    next_pair = 0
    for k, s in enumerate(scenes):
        rng = np.random.default_rng([seed, k])
        vi = sorted(set(int(i) for i in np.linspace(0, s.num_frames - 1, views).round()))
        rel = [f"{s.name}/view{v + 1}.png" for v in range(len(vi))]
        for v, f in enumerate(vi):
            with io.atomic_path(out / rel[v]) as tmp:
                Image.fromarray(np.asarray(s.rgb[f])).save(tmp, format="PNG")
        local: dict[Any, int] = {}
        for q in allangles_questions(s, vi, rng, per_category=per_type, min_pixels=min_pixels):
            pair = None
            if q["pair_idx"] is not None:
                if q["pair_idx"] not in local:
                    local[q["pair_idx"]] = next_pair
                    next_pair += 1
                pair = local[q["pair_idx"]]
            recs.append({"index": len(recs), "folder": s.name, "category": q["category"], "pair_idx": pair,
                         "sourced_dataset": "gaspprobe-synthetic", "image_path": [rel[v] for v in q["views"]],
                         "question": q["question"], "A": q["A"], "B": q["B"], "C": q["C"], "answer": q["answer"]})
    path = out / "data.json"
    io.atomic_write_text(path, json.dumps(recs, indent=1) + "\n")
    per: dict[str, int] = {}
    for r in recs:
        per[r["category"]] = per.get(r["category"], 0) + 1
    return {"n": len(recs), "per_type": dict(sorted(per.items())), "path": str(path)}
