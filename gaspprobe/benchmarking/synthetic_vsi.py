"""Synthetic VSI-Bench questions: all 10 question types with VSI-Bench's templates (paper Table 4),
answers from the scene annotations and exact geometry (:mod:`gaspprobe.benchmarking.synthetic_geometry`).

Counts >= 2, sizes in cm, distances in m, room size in m^2, relative direction at three
difficulties, route plans with one or two "[please fill in]" turns, first-appearance order.
Questions near a decision boundary are skipped, so every answer is unambiguous.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

from gaspprobe.benchmarking.synthetic_geometry import (ANGLE_MARGIN, DIST_MARGIN, MIN_DIST, MIN_PIXELS,
                                                       object_pixels, pairwise_box_distances, signed_angle_deg)

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

COLUMNS = ["id", "dataset", "scene_name", "question_type", "question", "ground_truth", "options"]


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




def vsi_table(scenes: Sequence, seed: int, per_type: int, min_pixels: int = MIN_PIXELS):
    """The question table (VSI-Bench columns and dtypes) over ``scenes``; scene k's questions are
    drawn with ``np.random.default_rng([seed, k])``. Videos go to ``{VSI_DATASET}/{scene}.mp4``."""
    import pandas as pd

    rows = []
    for k, s in enumerate(scenes):
        rng = np.random.default_rng([seed, k])
        for q in vsi_questions(s, rng, per_type=per_type, min_pixels=min_pixels):
            rows.append({"id": len(rows), "dataset": VSI_DATASET, "scene_name": s.name, **q})
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["id"] = df["id"].astype("int64")
    return df
