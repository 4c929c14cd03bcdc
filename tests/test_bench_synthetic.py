"""Synthetic benchmarks: every answer recomputed here by an independent (brute-force / numpy) method,
and the files checked against the real benchmarks' schema and layout."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from gaspprobe import io
from gaspprobe.benchmarking import synthetic as syn
from gaspprobe.benchmarking.runner import run
from gaspprobe.scenes.types import Object3D, Scene


# --------------------------------------------------------------------------- independent references
def surface_points(o: Object3D, n: int = 16) -> np.ndarray:
    """Points on the six faces of a yawed box (an n x n grid per face), world coordinates [6n^2, 3]."""
    g = np.linspace(-0.5, 0.5, n)
    u, v = np.meshgrid(g, g)
    u, v = u.ravel(), v.ravel()
    pts = []
    for ax in range(3):
        for s in (-0.5, 0.5):
            p = np.zeros((len(u), 3))
            others = [a for a in range(3) if a != ax]
            p[:, ax] = s
            p[:, others[0]] = u
            p[:, others[1]] = v
            pts.append(p)
    p = np.concatenate(pts) * np.asarray(o.size)
    c, s = np.cos(o.yaw), np.sin(o.yaw)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return p @ R.T + np.asarray(o.center)


def brute_distance(a: Object3D, b: Object3D, n: int = 16) -> float:
    pa, pb = surface_points(a, n), surface_points(b, n)
    d2 = (pa ** 2).sum(1)[:, None] + (pb ** 2).sum(1)[None] - 2 * pa @ pb.T
    return float(np.sqrt(max(d2.min(), 0.0)))


def brute_point_distance(p: np.ndarray, o: Object3D, n: int = 16) -> float:
    return float(np.linalg.norm(surface_points(o, n) - p, axis=1).min())


def grid_slack(*objs: Object3D, n: int = 16) -> float:
    """How far the sampled surface can miss the true closest point (half a grid cell diagonal)."""
    return max(float(np.linalg.norm(o.size)) for o in objs) / (n - 1)


def local_xy(f: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """v in the frame of a walker facing f on a z-up floor: (forward, left) components."""
    fwd = f / np.linalg.norm(f)
    left = np.array([-fwd[1], fwd[0]])  # f rotated +90 degrees about +z
    return float(v @ fwd), float(v @ left)


def first_frames(scene: Scene, min_pixels: int) -> dict[int, int]:
    inst = np.asarray(scene.instance)
    out = {}
    for o in scene.objects:
        for f in range(inst.shape[0]):
            if (inst[f] == o.id).sum() >= min_pixels:
                out[o.id] = f
                break
    return out


# --------------------------------------------------------------------------- scenes
def hand_scene() -> Scene:
    """A 4 x 5 m room with two chairs and five unique objects; object k first appears in frame k."""
    objs = [
        Object3D("chair", "red", (1.0, 1.0, 0.45), (0.5, 0.5, 0.9), 0.0, 0),
        Object3D("chair", "blue", (3.0, 1.0, 0.45), (0.5, 0.5, 0.9), 0.3, 1),
        Object3D("table", "brown", (2.0, 2.5, 0.375), (1.2, 0.8, 0.75), 0.0, 2),
        Object3D("sofa", "green", (2.0, 4.4, 0.425), (2.0, 0.9, 0.85), 0.0, 3),
        Object3D("lamp", "yellow", (0.4, 4.5, 0.8), (0.35, 0.35, 1.6), 0.0, 4),
        Object3D("tv", "black", (3.8, 2.5, 1.2), (1.1, 0.1, 0.65), np.pi / 2, 5),
        Object3D("plant", "green", (0.4, 0.4, 0.5), (0.5, 0.5, 1.0), 0.0, 6),
    ]
    F, H, W = 8, 16, 16
    inst = torch.full((F, H, W), -1, dtype=torch.int16)
    for f in range(F):
        for o in objs:
            if o.id <= f:
                inst[f, o.id * 2: o.id * 2 + 2, :] = o.id  # 32 px per object once it has appeared
    c2w = torch.eye(4).repeat(F, 1, 1)
    c2w[:, :3, 3] = torch.tensor([2.0, 0.2, 1.5])
    return Scene(rgb=torch.zeros(F, H, W, 3, dtype=torch.uint8), depth=torch.ones(F, H, W),
                 K=torch.tensor([[8.0, 0, 7.5], [0, 8.0, 7.5], [0, 0, 1]]).repeat(F, 1, 1), cam_to_world=c2w,
                 objects=objs, name="hand", room={"size": [4.0, 5.0, 2.8], "floor_area": 20.0}, instance=inst)


@pytest.fixture(scope="module")
def gen_scenes():
    from gaspprobe.scenes import generate_scene

    return [generate_scene(s, frames=16, size=96, motion=0.6) for s in range(5)]


# --------------------------------------------------------------------------- geometry
def test_box_distance_hand_cases():
    a = Object3D("a", "", (0.0, 0.0, 0.5), (1.0, 1.0, 1.0))
    b = Object3D("b", "", (3.0, 0.0, 0.5), (1.0, 1.0, 1.0))
    c = Object3D("c", "", (3.0, 0.0, 2.5), (1.0, 1.0, 1.0))
    d = Object3D("d", "", (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), yaw=np.pi / 4)  # overlaps a
    e = Object3D("e", "", (0.0, 2.0, 0.5), (1.0, 1.0, 1.0), yaw=np.pi / 4)  # corner towards a's face
    D = syn.pairwise_box_distances([a, b, c, d, e]).numpy()
    assert D[0, 1] == pytest.approx(2.0)
    assert D[0, 2] == pytest.approx(np.sqrt(2.0 ** 2 + 1.0 ** 2))
    assert D[0, 3] == 0.0
    assert D[0, 4] == pytest.approx(2.0 - 0.5 - np.sqrt(0.5))
    np.testing.assert_allclose(D, D.T)


def test_box_distances_match_brute_force_surface_sampling():
    rng = np.random.default_rng(1)
    objs = [Object3D("x", "", tuple(rng.uniform([0, 0, 0.2], [5, 5, 1.5])), tuple(rng.uniform(0.2, 1.5, 3)),
                     float(rng.uniform(0, 2 * np.pi))) for _ in range(9)]
    D = syn.pairwise_box_distances(objs).numpy()
    for i in range(len(objs)):
        for j in range(i + 1, len(objs)):
            ref = brute_distance(objs[i], objs[j])
            assert D[i, j] <= ref + 1e-9  # the analytic minimum is never above a sampled distance
            assert ref - D[i, j] <= grid_slack(objs[i], objs[j])
    p = rng.uniform(-1, 6, (5, 3))
    P = syn.point_box_distances(p, objs).numpy()
    for k in range(5):
        for j in range(len(objs)):
            ref = brute_point_distance(p[k], objs[j])
            assert P[k, j] <= ref + 1e-9 and ref - P[k, j] <= grid_slack(objs[j])


# --------------------------------------------------------------------------- VSI answers
_NAMES = {
    "object_counting": r"How many (?P<c>.+)\(s\) are in this room\?",
    "object_abs_distance": r".*distance between the (?P<a>.+) and the (?P<b>.+) \(in meters\)\?",
    "object_size_estimation": r".*dimension \(length, width, or height\) of the (?P<c>.+), measured in centimeters\?",
    "object_rel_distance": r".*which of these objects \((?P<opts>.+)\) is the closest to the (?P<c>.+)\?",
    "object_rel_direction": r"If I am standing by the (?P<p>.+) and facing the (?P<o>.+), is the (?P<q>.+?) to ",
    "route_planning": r"You are a robot beginning at the (?P<s>.+) and facing the (?P<f>.+)\. You want to navigate",
    "obj_appearance_order": r".*categories in the video: (?P<cats>.+)\?",
}


def check_vsi_question(scene: Scene, q: dict, min_pixels: int = syn.MIN_PIXELS) -> None:
    objs = scene.objects
    by_cls = {o.cls: o for o in objs}
    qt, gt = q["question_type"], q["ground_truth"]
    opts = {o[0]: o[3:] for o in (q["options"] if q["options"] is not None else [])}
    key = "object_rel_direction" if qt.startswith("object_rel_direction") else qt
    m = re.match(_NAMES[key], q["question"]) if key in _NAMES else None
    xy = lambda name: np.asarray(by_cls[name].center[:2])  # noqa: E731
    if qt == "object_counting":
        n = sum(o.cls == m["c"] for o in objs)
        assert int(gt) == n and n >= 2
    elif qt == "object_abs_distance":
        ref = brute_distance(by_cls[m["a"]], by_cls[m["b"]])
        assert abs(float(gt) - ref) <= grid_slack(by_cls[m["a"]], by_cls[m["b"]]) + 0.005
    elif qt == "object_size_estimation":
        assert int(gt) == round(100 * max(by_cls[m["c"]].size))
    elif qt == "room_size_estimation":
        assert float(gt) == pytest.approx(scene.room["size"][0] * scene.room["size"][1], abs=0.05)
    elif qt == "object_rel_distance":
        names = m["opts"].split(", ")
        assert names == list(opts.values())
        d = [brute_distance(by_cls[n], by_cls[m["c"]]) for n in names]
        assert opts[gt] == names[int(np.argmin(d))]
    elif key == "object_rel_direction":
        fwd, left = local_xy(xy(m["o"]) - xy(m["p"]), xy(m["q"]) - xy(m["p"]))
        if qt.endswith("easy"):
            assert opts[gt] == ("left" if left > 0 else "right")
        elif qt.endswith("medium"):
            behind = fwd < 0 and abs(left) < -fwd * np.tan(np.radians(45))  # turn >= 135 degrees
            assert opts[gt] == ("back" if behind else ("left" if left > 0 else "right"))
        else:
            assert opts[gt] == ("front" if fwd > 0 else "back") + ("-left" if left > 0 else "-right")
    elif qt == "route_planning":
        stops = [m["s"], m["f"]] + re.findall(r"Go forward until the (.+?)(?:\.| \d)", q["question"])[1:]
        turns = []
        for k in range(1, len(stops) - 1):
            fwd, left = local_xy(xy(stops[k]) - xy(stops[k - 1]), xy(stops[k + 1]) - xy(stops[k]))
            turns.append("Turn Back" if fwd < 0 and abs(left) < -fwd else ("Turn Left" if left > 0 else "Turn Right"))
            assert abs(left) > abs(fwd) or fwd < 0  # never "go straight"
        assert opts[gt] == ", ".join(turns)
    elif qt == "obj_appearance_order":
        first = first_frames(scene, min_pixels)
        cats = m["cats"].split(", ")
        order = sorted(cats, key=lambda c: first[by_cls[c].id])
        assert opts[gt] == ", ".join(order)
    else:  # pragma: no cover
        raise AssertionError(qt)


def test_vsi_hand_scene_answers_and_templates():
    s = hand_scene()
    qs = syn.vsi_questions(s, np.random.default_rng(0), per_type=50)
    types = Counter(q["question_type"] for q in qs)
    assert set(types) == {"object_counting", "object_abs_distance", "object_size_estimation", "room_size_estimation",
                          "object_rel_distance", "object_rel_direction_easy", "object_rel_direction_medium",
                          "object_rel_direction_hard", "route_planning", "obj_appearance_order"}
    for q in qs:
        check_vsi_question(s, q)
    by = {q["question_type"]: q for q in qs}
    assert by["object_counting"]["question"] == "How many chair(s) are in this room?"
    assert by["object_counting"]["ground_truth"] == "2" and by["object_counting"]["options"] is None
    assert by["room_size_estimation"]["question"] == ("What is the size of this room (in square meters)? If multiple "
                                                      "rooms are shown, estimate the size of the combined space.")
    assert by["room_size_estimation"]["ground_truth"] == "20.0"
    size = {q["question"]: q["ground_truth"] for q in qs if q["question_type"] == "object_size_estimation"}
    assert size["What is the length of the longest dimension (length, width, or height) of the sofa, measured in "
                "centimeters?"] == "200"
    # table (x 1.4..2.6, y 2.1..2.9) to sofa (y 3.95..4.85), both on the floor: 3.95 - 2.9 = 1.05 m
    dist = {q["question"]: q["ground_truth"] for q in qs if q["question_type"] == "object_abs_distance"}
    assert dist["Measuring from the closest point of each object, what is the direct distance between the table "
                "and the sofa (in meters)?"] == "1.05"
    assert all(q["options"] is None or all(re.match(r"^[A-D]\. ", o) for o in q["options"]) for q in qs)


def test_vsi_generated_scene_answers(gen_scenes):
    seen = Counter()
    for k, s in enumerate(gen_scenes):
        for q in syn.vsi_questions(s, np.random.default_rng(k), per_type=20):
            check_vsi_question(s, q)
            seen[q["question_type"]] += 1
    assert len(seen) == 10, seen  # all ten question types occur on generated scenes


# --------------------------------------------------------------------------- All-Angles answers
def project_u(scene: Scene, frame: int, p: np.ndarray) -> tuple[float, float]:
    """(u / (W - 1), z) of world point p in a frame, with numpy (independent of the torch geometry)."""
    w2c = np.linalg.inv(np.asarray(scene.cam_to_world[frame], dtype=np.float64))
    pc = w2c[:3, :3] @ p + w2c[:3, 3]
    K = np.asarray(scene.K[frame], dtype=np.float64)
    return float((K[0, 0] * pc[0] / pc[2] + K[0, 2]) / (scene.size[1] - 1)), float(pc[2])


def check_allangles(scene: Scene, views: list[int], rows: list[dict], min_pixels: int = syn.MIN_PIXELS) -> None:
    by_cls = {}
    for o in scene.objects:
        by_cls.setdefault(o.cls, []).append(o)
    inst = np.asarray(scene.instance)
    for r in rows:
        opts = {"A": r["A"], "B": r["B"], "C": r["C"]}
        ans = opts[r["answer"]]
        assert len(set(opts.values())) == 3
        vs = [views[i] for i in r["views"]]
        cat, q = r["category"], r["question"]
        if cat == "counting":
            cls = re.match(r"How many (.+)\(s\) can be seen", q)[1]
            n = sum(any((inst[f] == o.id).sum() >= min_pixels for f in views) for o in by_cls[cls])
            assert ans == str(n) and r["pair_idx"] is None and len(vs) == len(views)
        elif cat == "attribute_identification":
            cls = re.match(r"What is the color of the (.+) in View \d\?", q)[1]
            assert ans == by_cls[cls][0].color
        elif cat == "relative_distance":
            w = int(re.search(r"View (\d)", q)[1]) - 1
            cam = np.asarray(scene.cam_to_world[vs[w]][:3, 3], dtype=np.float64)
            d = {n: brute_point_distance(cam, by_cls[n][0]) for n in opts.values()}
            assert ans == min(d, key=d.get)
        elif cat == "relative_direction":
            a, b = re.match(r"In View 1, is the (.+) to the (?:left|right) or the (?:left|right) of the (.+)\?", q).groups()
            ua, _ = project_u(scene, vs[0], np.asarray(by_cls[a][0].center))
            ub, _ = project_u(scene, vs[0], np.asarray(by_cls[b][0].center))
            assert ans == ("left" if ua < ub else "right")
        elif cat == "manipulation":
            cls, part, w = re.match(r"The (.+) appears in the (\w+ part) of View (\d)", q).groups()
            other = 2 - int(w)
            thirds = lambda u: "left part" if u < 1 / 3 else ("middle part" if u < 2 / 3 else "right part")  # noqa: E731
            c = np.asarray(by_cls[cls][0].center)
            assert part == thirds(project_u(scene, vs[int(w) - 1], c)[0])
            assert ans == thirds(project_u(scene, vs[other], c)[0])
        elif cat == "camera_pose_estimation":
            xy = np.asarray(scene.cam_to_world[vs][:, :2, 3], dtype=np.float64)
            z = (xy[:, 0] - xy[:, 0].mean()) + 1j * (xy[:, 1] - xy[:, 1].mean())
            rel = np.angle(z / z[0])  # angle of each camera relative to View 1, in (-pi, pi]
            cw = [0] + sorted(range(1, len(vs)), key=lambda k: (-rel[k]) % (2 * np.pi))  # clockwise = decreasing angle
            order = cw if "counterclockwise" not in q else [0] + cw[1:][::-1]
            assert ans == ", ".join(f"View {k + 1}" for k in order)
        else:  # pragma: no cover
            raise AssertionError(cat)


def test_allangles_generated_scene_answers_and_pairs(gen_scenes):
    seen = Counter()
    for k, s in enumerate(gen_scenes):
        views = [int(i) for i in np.linspace(0, s.num_frames - 1, 4).round()]
        rows = syn.allangles_questions(s, views, np.random.default_rng(k), per_category=10)
        check_allangles(s, views, rows)
        seen.update(r["category"] for r in rows)
        pairs = Counter(r["pair_idx"] for r in rows if r["pair_idx"] is not None)
        assert set(pairs.values()) == {2}
        assert all(r["pair_idx"] is None for r in rows if r["category"] == "counting")
    assert set(seen) == set(syn_categories()), seen


def syn_categories():
    from gaspprobe.benchmarking.metrics import ALLANGLES_CATEGORIES

    return ALLANGLES_CATEGORIES


# --------------------------------------------------------------------------- files, layout, end to end
def test_synthesize_vsibench_layout_and_oracle(tmp_path, gen_scenes):
    info = syn.synthesize(gen_scenes[:2], tmp_path / "vsi", format="vsibench", seed=0)
    df = pd.read_parquet(tmp_path / "vsi" / "test-00000-of-00001.parquet")
    assert list(df.columns) == ["id", "dataset", "scene_name", "question_type", "question", "ground_truth", "options"]
    assert df["id"].dtype == np.int64 and df["id"].is_unique and len(df) == info["n"]
    assert all(isinstance(x, str) for x in df["ground_truth"])
    from gaspprobe.benchmarking.vsibench import read_video_frames

    fr, idx, n = read_video_frames(tmp_path / "vsi" / "synthetic" / f"{gen_scenes[0].name}.mp4", 16)
    assert n == gen_scenes[0].num_frames and list(idx) == list(range(16))
    assert np.abs(fr.astype(float) - np.asarray(gen_scenes[0].rgb, dtype=float)).mean() < 8  # lossy but same frames
    few = syn.synthesize(gen_scenes[:1], tmp_path / "few", format="vsibench", frames=5)
    assert read_video_frames(tmp_path / "few" / "synthetic" / f"{gen_scenes[0].name}.mp4", 5)[2] == 5
    again = syn.synthesize(gen_scenes[:2], tmp_path / "vsi2", format="vsibench", seed=0)
    assert again["n"] == info["n"]
    pd.testing.assert_frame_equal(df, pd.read_parquet(tmp_path / "vsi2" / "test-00000-of-00001.parquet"))
    r = run("oracle:answers", "synthetic_vsi", tmp_path / "vsi", tmp_path / "run", progress=False)
    assert r.overall == pytest.approx(100.0) and r.summary["n_failed"] == 0


def test_synthesize_allangles_layout_and_oracle(tmp_path, gen_scenes):
    info = syn.synthesize(gen_scenes[:2], tmp_path / "aa", format="allangles", seed=0, views=4)
    recs = json.loads((tmp_path / "aa" / "data.json").read_text())
    assert len(recs) == info["n"] and [r["index"] for r in recs] == list(range(len(recs)))
    for r in recs:
        assert list(r) == ["index", "folder", "category", "pair_idx", "sourced_dataset", "image_path", "question",
                           "A", "B", "C", "answer"]
        assert all((tmp_path / "aa" / p).is_file() for p in r["image_path"])
    r = run("oracle:answers", "synthetic_allangles", tmp_path / "aa", tmp_path / "run", progress=False)
    assert r.overall == pytest.approx(100.0)
    assert r.summary["paired_consistency"] and all(v["CC"] == 100.0 for v in r.summary["paired_consistency"].values())


def test_synthesize_cli_from_a_scene_folder(tmp_path, gen_scenes):
    from gaspprobe.cli import main
    from gaspprobe.scenes import save_scene

    save_scene(gen_scenes[0], tmp_path / "scenes" / gen_scenes[0].name)
    with pytest.raises(SystemExit) as e:
        main(["bench", "synthesize", "--scenes", str(tmp_path / "scenes"), "--out", str(tmp_path / "data"),
              "--format", "allangles"])
    assert e.value.code == 0 and (tmp_path / "data" / "data.json").exists()
    with pytest.raises(SystemExit) as e:
        main(["bench", "synthesize", "--scenes", str(tmp_path / "scenes"), "--out", str(tmp_path / "d2"),
              "--format", "scanqa"])
    assert e.value.code == 2
    assert io.read_json(tmp_path / "data" / "data.json")


# --------------------------------------------------------------------------- BLINK
def _blink(scenes, seed=0, per_type=3):
    from gaspprobe.benchmarking.synthetic_blink import blink_rows

    return blink_rows(scenes, seed, per_type)


def _orbit_scene(clockwise: bool) -> Scene:
    """Two frames of a camera circling the room centre at 2 m, looking at it: 40 degrees
    clockwise (seen from above, z up) or counter-clockwise."""
    from gaspprobe.scenes.geometry import look_at

    ang0 = -np.pi / 2
    ang1 = ang0 + np.radians(-40 if clockwise else 40)
    eyes = torch.tensor([[2 * np.cos(a), 2 * np.sin(a), 1.2] for a in (ang0, ang1)], dtype=torch.float64)
    c2w = look_at(eyes, torch.tensor([[0.0, 0.0, 1.2]] * 2, dtype=torch.float64)).float()
    F, H, W = 2, 32, 32
    return Scene(rgb=torch.zeros(F, H, W, 3, dtype=torch.uint8), depth=torch.zeros(F, H, W),
                 K=torch.tensor([[20.0, 0, 15.5], [0, 20.0, 15.5], [0, 0, 1]]).repeat(F, 1, 1), cam_to_world=c2w,
                 name="orbit")


def test_blink_multiview_answers_the_orbit_sense():
    """BLINK's text: clockwise (seen from above) = left. Hand-made orbits of known sense."""
    for clockwise, letter in ((True, "(A)"), (False, "(B)")):
        rows = _blink([_orbit_scene(clockwise)])["Multi-view_Reasoning"]
        assert len(rows) == 1 and rows[0]["choices"] == ["left", "right"]
        assert rows[0]["answer"] == letter and rows[0]["_frames"] == [0, 1]
    # a camera that slides sideways while turning the wrong way is not an orbit: no question
    s = _orbit_scene(True)
    c2w = s.cam_to_world.clone()
    c2w[1, :3, :3] = c2w[0, :3, :3]  # same heading in both frames
    s.cam_to_world = c2w
    assert _blink([s])["Multi-view_Reasoning"] == []


def _red_near(png: dict, u: float, v: float, r: int) -> bool:
    import io as _io

    from PIL import Image

    im = np.asarray(Image.open(_io.BytesIO(png["bytes"])).convert("RGB")).astype(int)
    H, W = im.shape[:2]
    y0, y1 = max(0, int(v) - r - 2), min(H, int(v) + r + 3)
    x0, x1 = max(0, int(u) - r - 2), min(W, int(u) + r + 3)
    patch = im[y0:y1, x0:x1]
    return bool(((patch[..., 0] == 255) & (patch[..., 1] == 0) & (patch[..., 2] == 0)).any())


def naive_transfer(scene: Scene, i: int, j: int, u: float, v: float) -> tuple[float, float, float]:
    """Pixel (u, v) of frame i in frame j, in plain numpy: (u', v', z')."""
    K_i, K_j = np.asarray(scene.K[i], float), np.asarray(scene.K[j], float)
    d = float(np.asarray(scene.depth[i])[int(v), int(u)])
    x_cam = d * np.linalg.inv(K_i) @ np.array([u, v, 1.0])
    x_w = np.asarray(scene.cam_to_world[i], float) @ np.append(x_cam, 1.0)
    x_j = np.linalg.inv(np.asarray(scene.cam_to_world[j], float)) @ x_w
    p = K_j @ x_j[:3]
    return p[0] / p[2], p[1] / p[2], x_j[2]


def test_blink_generated_scene_answers(gen_scenes):
    """Each question re-derived from the marks' pixels with plain numpy: the REF point lands on the
    answer's circle and is visible there; the closer mark has the smaller depth; the marks are
    drawn in red where the row says; Spatial_Relation from the instance masks."""
    out = _blink(gen_scenes)
    assert all(out[s] for s in ("Multi-view_Reasoning", "Visual_Correspondence", "Relative_Depth",
                                "Spatial_Relation")), {k: len(v) for k, v in out.items()}
    for s in gen_scenes:  # one scene at a time, so each row's frames index that scene
        rows = _blink([s])
        H, W = s.size
        for r in rows["Visual_Correspondence"]:
            i, j = r["_frames"]
            (_, u0, v0, lab0), *cands = r["_marks"]
            assert lab0 == "REF" and [m[3] for m in cands] == list("ABCD")
            uj, vj, z = naive_transfer(s, i, j, u0, v0)
            dj = float(np.asarray(s.depth[j])[int(np.floor(vj + 0.5)), int(np.floor(uj + 0.5))])
            assert z > 0 and abs(z - dj) <= 0.05 * dj  # visible in frame j
            dist = [np.hypot(m[1] - uj, m[2] - vj) for m in cands]
            assert "ABCD"[int(np.argmin(dist))] == r["answer"].strip("()") and min(dist) <= 0.75
            assert sorted(dist)[1] >= 0.15 * min(H, W) - 1
            assert _red_near(r["image_1"], u0, v0, 3) and all(_red_near(r["image_2"], m[1], m[2], 3) for m in cands)
        for r in rows["Relative_Depth"]:
            (f,) = r["_frames"]
            (_, ua, va, la), (_, ub, vb, lb) = r["_marks"]
            assert (la, lb) == ("A", "B")
            za = float(np.asarray(s.depth[f])[int(va), int(ua)])
            zb = float(np.asarray(s.depth[f])[int(vb), int(ub)])
            assert max(za, zb) / min(za, zb) >= 1.2
            assert r["answer"] == ("(A)" if za < zb else "(B)")
            assert r["image_2"] is None and _red_near(r["image_1"], ua, va, 3)
        for r in rows["Spatial_Relation"]:
            (f,) = r["_frames"]
            m = re.match(r"Is the (.+) on the (left|right) of the (.+)\?$", r["question"])
            a, side, b = m.groups()
            ida = next(o.id for o in s.objects if o.cls == a)
            idb = next(o.id for o in s.objects if o.cls == b)
            inst = np.asarray(s.instance[f])
            ua, ub = np.nonzero(inst == ida)[1], np.nonzero(inst == idb)[1]
            a_left = ua.max() < ub.min()
            assert a_left or ub.max() < ua.min()
            assert r["answer"] == ("(A)" if (side == "left") == a_left else "(B)")
        for r in rows["Multi-view_Reasoning"]:
            i, j = r["_frames"]
            rel = np.linalg.inv(np.asarray(s.cam_to_world[i], float)) @ np.asarray(s.cam_to_world[j], float)
            assert r["answer"] == ("(A)" if rel[0, 3] < 0 else "(B)")


def test_synthesize_blink_layout_real_cards_and_oracle(tmp_path, gen_scenes):
    """One parquet per BLINK config with the fixture's (= the hub's) Arrow schema; each real
    blink_* card reads its own file unchanged, synthetic_blink reads all four; the oracle scores 100."""
    from pathlib import Path

    import pyarrow.parquet as pq

    info = syn.synthesize(gen_scenes[:3], tmp_path / "blink", format="blink", seed=0)
    fix = Path(__file__).parent / "fixtures" / "bench" / "blink"
    cards = {"Multi-view_Reasoning": "blink_multiview", "Visual_Correspondence": "blink_correspondence",
             "Relative_Depth": "blink_depth", "Spatial_Relation": "blink_spatial"}
    assert sorted(info["per_type"]) == sorted(cards) and info["path"] == str(tmp_path / "blink")
    for sub, card in cards.items():
        f = tmp_path / "blink" / f"{sub}.parquet"
        assert pq.read_schema(f).remove_metadata() == pq.read_schema(fix / f"{sub}.parquet").remove_metadata()
        rows = pq.read_table(f).to_pylist()
        assert len(rows) == info["per_type"][sub] and all(r["sub_task"] == sub for r in rows)
        assert [r["idx"] for r in rows] == [f"val_{sub}_{k}" for k in range(1, len(rows) + 1)]
        r = run("oracle:answers", card, f, tmp_path / f"run_{card}", progress=False)
        assert r.overall == pytest.approx(100.0) and r.summary["n"] == len(rows)
    r = run("oracle:answers", "synthetic_blink", tmp_path / "blink", tmp_path / "run", progress=False)
    assert r.overall == pytest.approx(100.0) and r.summary["n"] == info["n"]
    assert set(r.summary["tasks"]) == {"multi_view_reasoning", "visual_correspondence", "relative_depth",
                                       "spatial_relation"}
    again = syn.synthesize(gen_scenes[:3], tmp_path / "blink2", format="blink", seed=0)
    assert again["per_type"] == info["per_type"]
    for sub in cards:
        assert pq.read_table(tmp_path / "blink" / f"{sub}.parquet").equals(
            pq.read_table(tmp_path / "blink2" / f"{sub}.parquet"))


def test_real_card_over_synthetic_files_is_marked_synthetic(tmp_path, gen_scenes):
    """blink_depth reading a synthesized folder says so in its summary and in the report's rows;
    over the hand-written fixture (no gaspprobe manifest) it does not."""
    from pathlib import Path

    from gaspprobe.reporting.collect import bench_rows
    from gaspprobe.reporting.runs import read_run

    syn.synthesize(gen_scenes[:2], tmp_path / "blink", format="blink", seed=0)
    r = run("oracle:answers", "blink_depth", tmp_path / "blink" / "Relative_Depth.parquet", tmp_path / "run",
            progress=False)
    assert r.summary["data_synthetic"] is True
    assert bench_rows(read_run(tmp_path / "run"), "m")[1]["benchmark"] == "blink_depth [synthetic data]"
    fix = Path(__file__).parent / "fixtures" / "bench" / "blink" / "Relative_Depth.parquet"
    r2 = run("oracle:answers", "blink_depth", fix, tmp_path / "run2", progress=False)
    assert r2.summary["data_synthetic"] is False
