"""Synthetic All-Angles Bench questions about multi-view scenes: the six categories, each (but
counting) with a paired version that swaps the view reference, the orientation words or the
rotation sense (paper section 2.2).

The "manipulation" category is a proxy that tests cross-view object correspondence ("the X is in
the left part of View 1; where is it in View 2?"); the real category asks about hand-object
manipulation, which static synthetic scenes do not have.
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np

from gaspprobe.benchmarking.synthetic_geometry import (DIST_MARGIN, MIN_PIXELS, cam_points, object_pixels,
                                                       pixel_coords, point_box_distances)

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




def view_frames(scene, views: int) -> list[int]:
    """The frames used as views: ``views`` evenly spread over the scene's frames."""
    return sorted(set(int(i) for i in np.linspace(0, scene.num_frames - 1, views).round()))


def allangles_records(scenes: Sequence, seed: int, per_type: int, views: int,
                      min_pixels: int = MIN_PIXELS) -> tuple[list[dict], list[tuple[str, Any]]]:
    """``data.json`` records (All-Angles fields) and the view images ``[(relpath, uint8 [H,W,3])]``
    (``{scene}/view{k}.png``). Pair ids are renumbered globally in order of appearance."""
    recs: list[dict] = []
    images: list[tuple[str, Any]] = []
    next_pair = 0
    for k, s in enumerate(scenes):
        rng = np.random.default_rng([seed, k])
        vi = view_frames(s, views)
        rel = [f"{s.name}/view{v + 1}.png" for v in range(len(vi))]
        images += [(rel[v], np.asarray(s.rgb[f])) for v, f in enumerate(vi)]
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
    return recs, images
