"""Synthetic spatial benchmarks written in the exact schema and file layout of the real ones.

Start at :func:`synthesize` (``gaspprobe bench synthesize --scenes DIR --out DATA --format ...``).
One module per format writes the questions; this one publishes the data folder through the run
kernel (:func:`gaspprobe.runs.open_run`, kind ``bench_data``, staged: the folder appears complete
or not at all; the same scenes and options again return the cached folder):

- ``format="vsibench"`` (:mod:`~gaspprobe.benchmarking.synthetic_vsi`): ``test-00000-of-00001.parquet``
  (VSI-Bench columns and dtypes) and one video per scene at ``synthetic/{scene_name}.mp4`` (all
  frames, PyAV H.264), so the VSI-Bench loader scores it unchanged.
- ``format="allangles"`` (:mod:`~gaspprobe.benchmarking.synthetic_allangles`): ``data.json``
  (All-Angles fields) and view images at ``{scene_name}/view{k}.png``.
- ``format="blink"`` (:mod:`~gaspprobe.benchmarking.synthetic_blink`): one parquet per BLINK
  spatial subtask config (``Multi-view_Reasoning.parquet``, ``Visual_Correspondence.parquet``,
  ``Relative_Depth.parquet``, ``Spatial_Relation.parquet``; BLINK's columns, images embedded as
  HF Image structs with their marks drawn), so each ``blink_*`` card scores its file unchanged and
  the ``synthetic_blink`` card all four.

Answers come from the scene annotations (objects, room, instance maps, camera poses) and exact
geometry (:mod:`~gaspprobe.benchmarking.synthetic_geometry`, camera maths from
:mod:`gaspprobe.scenes.geometry`); questions near a decision boundary are skipped (margins), so
every answer is unambiguous. Distances are between the annotated 3D boxes (yaw about +z), as
VSI-Bench derives them from box annotations: d = sqrt(d_xy^2 + d_z^2) with d_xy the distance
between the two footprint rectangles (0 when they overlap) and d_z the gap between the height
intervals.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from gaspprobe import io
from gaspprobe.benchmarking.synthetic_allangles import allangles_questions, allangles_records  # noqa: F401
from gaspprobe.benchmarking.synthetic_geometry import (ANGLE_MARGIN, DIST_MARGIN, MIN_DIST, MIN_PIXELS,  # noqa: F401
                                                       box_corners_xy, cam_points, object_pixels,
                                                       pairwise_box_distances, pixel_coords, point_box_distances,
                                                       signed_angle_deg)
from gaspprobe.benchmarking.synthetic_vsi import VSI_DATASET, VSI_FILE, vsi_questions, vsi_table  # noqa: F401
from gaspprobe.errors import DataError

FORMATS = ("vsibench", "allangles", "blink")
KIND = "bench_data"


def _load_scenes(scenes) -> list:
    if isinstance(scenes, (str, Path)):
        from gaspprobe.scenes import load_scenes

        return load_scenes(scenes)
    return list(scenes)


def scenes_digest(scenes) -> str:
    """sha256 over every scene's name, frames, poses, intrinsics and objects: the data's identity,
    so regenerated scenes under the same path are not answered from an old folder."""
    h = hashlib.sha256()
    for s in scenes:
        h.update(s.name.encode())
        for a in (s.rgb, s.cam_to_world, s.K):
            arr = np.ascontiguousarray(np.asarray(a))
            h.update(str(arr.shape).encode() + str(arr.dtype).encode())
            h.update(arr.tobytes())
        h.update(json.dumps([o.to_json() for o in s.objects], sort_keys=True, default=str).encode())
        h.update(json.dumps(s.room or {}, sort_keys=True, default=str).encode())
    return h.hexdigest()


def synthesize(scenes, out: str | Path, *, format: str = "vsibench", seed: int = 0, per_type: int = 2,
               views: int = 4, fps: int = 10, min_pixels: int = MIN_PIXELS, frames: int | None = None,
               label: str | None = None, force: bool = False, wait: bool = False) -> dict:
    """Write a synthetic benchmark about ``scenes`` (a folder or a list of :class:`Scene`) to ``out``.

    Args:
        format: "vsibench" (parquet + ``synthetic/{scene}.mp4``), "allangles" (``data.json`` +
            ``{scene}/view{k}.png``) or "blink" (one parquet per spatial subtask).
        seed: seeds question sampling and option shuffling (same seed, same files).
        per_type: questions per question type (VSI), category (All-Angles) or subtask (BLINK) per
            scene, at most.
        views: All-Angles views per scene (frames spread evenly over the scene's frames).
        fps: VSI video frame rate.
        min_pixels: an object counts as seen in a frame when it covers at least this many pixels.
        frames: keep only this many evenly spaced frames of each scene (a difficulty knob: fewer
            frames, sparser views); None keeps all.
        label: recorded in the manifest (``model_label``); force: rewrite even a cached folder;
            wait: wait for another process writing ``out`` instead of refusing.
    Returns:
        ``{"n": questions, "per_type": {type: n}, "path": question file}``. A folder holding data
        made from other scenes or options is replaced (it is derived data; nothing is lost).
    """
    from gaspprobe.runs import open_run

    if format not in FORMATS:
        raise DataError(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
    sc = _load_scenes(scenes)
    if frames is not None:
        if frames < 1:
            raise DataError(f"frames: expected a positive number, got {frames}")
        sc = [s.subset(sorted(set(int(i) for i in np.linspace(0, s.num_frames - 1, frames).round())))
              if s.num_frames > frames else s for s in sc]
    if not sc:
        raise DataError("no scenes to write questions about", path=str(scenes) if isinstance(scenes, (str, Path)) else None)
    out = Path(out)
    config = {"format": format, "seed": seed, "per_type": per_type, "views": views if format == "allangles" else None,
              "fps": fps if format == "vsibench" else None, "min_pixels": min_pixels, "frames": frames}
    identity = {"scenes": [s.name for s in sc], "scenes_sha256": scenes_digest(sc)}
    with open_run(out, KIND, config, publish="staged", identity=identity, seed=seed, label=label,
                  on_change="replace", force=force, wait=wait) as rk:
        if rk.cached:
            return dict(rk.manifest.get("info") or {})
        if format == "vsibench":
            info = _write_vsi(sc, rk.dir, seed, per_type, fps, min_pixels)
        elif format == "blink":
            info = _write_blink(sc, rk.dir, seed, per_type, min_pixels)
        else:
            info = _write_allangles(sc, rk.dir, seed, per_type, views, min_pixels)
        info["path"] = str(out / Path(info["path"]).relative_to(rk.dir))  # where it is once published
        rk.complete(info=info)
    return info


def _write_vsi(scenes, out: Path, seed: int, per_type: int, fps: int, min_pixels: int) -> dict:
    from gaspprobe.benchmarking.video import write_video

    df = vsi_table(scenes, seed, per_type, min_pixels)
    for s in scenes:
        write_video(out / VSI_DATASET / f"{s.name}.mp4", np.asarray(s.rgb), fps=fps)
    path = out / VSI_FILE
    with io.atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return {"n": len(df), "per_type": {str(k): int(v) for k, v in
                                       df["question_type"].value_counts().sort_index().items()}, "path": str(path)}


def _write_allangles(scenes, out: Path, seed: int, per_type: int, views: int, min_pixels: int) -> dict:
    from PIL import Image

    recs, images = allangles_records(scenes, seed, per_type, views, min_pixels)
    for rel, arr in images:
        with io.atomic_path(out / rel) as tmp:
            Image.fromarray(arr).save(tmp, format="PNG")
    path = out / "data.json"
    io.atomic_write_text(path, json.dumps(recs, indent=1) + "\n")
    per: dict[str, int] = {}
    for r in recs:
        per[r["category"]] = per.get(r["category"], 0) + 1
    return {"n": len(recs), "per_type": dict(sorted(per.items())), "path": str(path)}


def _write_blink(scenes, out: Path, seed: int, per_type: int, min_pixels: int) -> dict:
    import datasets

    from gaspprobe.benchmarking.synthetic_blink import BLINK_COLUMNS, blink_features, blink_rows

    per: dict[str, int] = {}
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # one bar per tiny file is noise
    try:
        for sub, rows in blink_rows(scenes, seed, per_type, min_pixels).items():
            if not rows:
                continue
            cols = {k: [r[k] for r in rows] for k in BLINK_COLUMNS}
            with io.atomic_path(out / f"{sub}.parquet") as tmp:
                datasets.Dataset.from_dict(cols, features=blink_features()).to_parquet(str(tmp))
            per[sub] = len(rows)
    finally:
        if bars:
            datasets.enable_progress_bars()
    if not per:
        raise DataError("no BLINK question could be written from these scenes (no depth, or too few frames)")
    return {"n": sum(per.values()), "per_type": per, "path": str(out)}
