"""Find, read, check, convert and index scenes of ANY registered format (the one entry point).

Where to start: :func:`load_scenes` (what the probe and the trainer call) reads a scene folder,
a folder of scenes, or a dataset root, whatever its format: :func:`find_scenes` walks the tree
(breadth first, at most ``max_depth`` levels, hidden folders skipped) and asks every format of
:data:`gaspprobe.scenes.formats.FORMATS`, most specific first, whether a folder is one of its
scenes; a folder that is a scene is not descended into. :func:`describe` is what
``gaspprobe scenes check`` prints, :func:`convert` writes a copy in the ScanNet layout through the
run kernel, :func:`write_index` writes the parquet scene index used to sample clips without
opening scenes.
"""

from __future__ import annotations

import re
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from gaspprobe.errors import DataError
from gaspprobe.scenes.formats import FORMATS, SceneFormat, by_priority

MAX_DEPTH = 4
INDEX_COLUMNS = ["scene", "format", "frames", "height", "width", "fx", "fy", "cx", "cy", "metric", "path"]


def detect(path: str | Path, format: str | None = None) -> SceneFormat | None:
    """The format of which ``path`` is ONE scene (most specific first), or None."""
    p = Path(path)
    if not p.is_dir():
        return None
    for f in ([FORMATS.get(format)] if format else by_priority()):
        if f.detect(p):
            return f
    return None


def find_scenes(path: str | Path, format: str | None = None, *, max_depth: int = MAX_DEPTH) -> list[tuple[SceneFormat, Path]]:
    """Every scene under ``path`` as (format, scene path), in sorted path order.

    Raises DataError (naming ``path``) when it is missing, not a folder, or holds no scene.
    """
    root = Path(path)
    if not root.exists():
        raise DataError("not found", path=root)
    if not root.is_dir():
        raise DataError("not a folder", path=root)
    fmts = [FORMATS.get(format)] if format else by_priority()
    found: list[tuple[SceneFormat, Path]] = []
    queue: deque[tuple[Path, int]] = deque([(root, 0)])
    while queue:
        p, depth = queue.popleft()
        f = next((f for f in fmts if f.detect(p)), None)
        if f is not None:
            found.append((f, p))
            continue
        if depth < max_depth:
            try:
                subs = sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))
            except OSError:
                continue
            queue.extend((c, depth + 1) for c in subs)
    if not found:
        looked = format or ", ".join(f.name for f in fmts)
        raise DataError(f"no scenes found (looked for {looked} up to {max_depth} levels down; "
                        "see gaspprobe scenes formats)", path=root)
    return sorted(found, key=lambda fp: str(fp[1]))


def load_scene(path: str | Path, *, format: str | None = None, metric: bool | None = None):
    """ONE scene folder of any format (``metric`` overrides the format's default).

    A folder no format recognises is handed to the ScanNet reader, whose messages name what is
    missing (the layout every gaspprobe scene has).
    """
    p = Path(path)
    f = detect(p, format)
    if f is None:
        if format:
            raise DataError(f"not a {format} scene", path=p)
        from gaspprobe.scenes.scannet import load_scene as scannet_load

        return scannet_load(p)
    return f.read(p, metric=metric)


def load_scenes(path: str | Path, *, format: str | None = None, metric: bool | None = None) -> list:
    """Every scene under ``path`` (a scene, a folder of scenes, a dataset root), any format.

    This is the loader the probe, the trainer and the benchmark writer use. Raises DataError
    (one line, naming the file) for a malformed scene.
    """
    p = Path(path)
    if p.is_dir() and detect(p, format) is None and format is None and not any(p.iterdir()):
        from gaspprobe.scenes.scannet import load_scene as scannet_load

        scannet_load(p)  # its "empty folder (not a scene)" message
    return [f.read(sp, metric=metric) for f, sp in find_scenes(p, format)]


# --------------------------------------------------------------------------- check
@dataclass
class SceneInfo:
    """What ``gaspprobe scenes check`` reports for one scene."""

    path: Path
    format: str
    name: str = ""
    frames: int = 0
    height: int = 0
    width: int = 0
    K: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # fx, fy, cx, cy of frame 0
    metric: bool = True
    problems: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        fx, fy, cx, cy = self.K
        return {"scene": self.name, "format": self.format, "frames": self.frames, "height": self.height,
                "width": self.width, "fx": fx, "fy": fy, "cx": cx, "cy": cy, "metric": self.metric,
                "path": str(self.path)}


def scene_info(fmt: SceneFormat, p: Path, scene: Any) -> SceneInfo:
    K = scene.K[0].double()
    return SceneInfo(path=p, format=fmt.name, name=scene.name, frames=scene.num_frames,
                     height=scene.size[0], width=scene.size[1],
                     K=(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])), metric=bool(scene.metric))


def describe(path: str | Path, format: str | None = None,
             progress: Callable[[int, int], None] | None = None) -> list[SceneInfo]:
    """Read every scene under ``path`` and report it; a broken scene gets its problems (one line
    each, naming the file) instead of stopping the others."""
    from gaspprobe.scenes.scannet import SceneWarning, check_scene

    found = find_scenes(path, format)
    out: list[SceneInfo] = []
    for n, (f, p) in enumerate(found):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                s = f.read(p)
            except DataError as e:
                out.append(SceneInfo(path=p, format=f.name, name=p.name, problems=[str(e)]))
                if progress:
                    progress(n + 1, len(found))
                continue
        info = scene_info(f, p, s)
        if f.name == "scannet":
            info.problems = check_scene(p)  # its own checks (orthonormal poses, empty depth, ...)
        else:
            info.problems = [str(w.message) for w in caught if issubclass(w.category, SceneWarning)]
            zero = [s.frame_ids[i] for i in range(s.num_frames) if not bool((s.depth[i] > 0).any())]
            if zero:
                info.problems.append(f"{p}: {len(zero)} frame(s) with no valid depth, first {zero[0]}")
        out.append(info)
        del s
        if progress:
            progress(n + 1, len(found))
    return out


# --------------------------------------------------------------------------- convert
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _folder_name(name: str, used: set[str]) -> str:
    base = _SAFE.sub("_", name).strip("._") or "scene"
    cand, k = base, 1
    while cand in used:
        k += 1
        cand = f"{base}_{k}"
    used.add(cand)
    return cand


def convert(src: str | Path, out: str | Path, *, format: str | None = None, force: bool = False,
            label: str | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Write every scene under ``src`` to ``out`` in the ScanNet layout (one folder per scene).

    Published through the run kernel (staged: ``out`` appears complete or not at all; rerunning on
    the same source is a no-op). Non-metric scenes keep ``"metric": false`` in their objects.json.
    Depth beyond 65.535 (the uint16 millimetre range) cannot be stored and becomes 0 (a warning
    says how many pixels). Returns the run's manifest.
    """
    import numpy as np

    from gaspprobe.runs import open_run
    from gaspprobe.scenes.scannet import save_scene

    src = Path(src)
    found = find_scenes(src, format)
    config = {"source": str(src.resolve()), "format": format, "scenes": [str(p.relative_to(src)) for _, p in found]}
    with open_run(out, "scenes", config, publish="staged", label=label, force=force) as run:
        if run.cached:
            return run.manifest or {}
        used: set[str] = set()
        names, formats, clipped = [], {}, 0
        for n, (f, p) in enumerate(found):
            s = f.read(p)
            K = s.K.double().numpy()
            if not np.allclose(K, K[:1], rtol=0, atol=1e-6):
                raise DataError("frames have different intrinsics; the ScanNet layout stores one K per scene "
                                "(convert is not possible without resampling)", path=p)
            clipped += int((s.depth > 65.535).sum())
            name = _folder_name(s.name, used)
            save_scene(s, run.dir / name)
            names.append(name)
            formats[f.name] = formats.get(f.name, 0) + 1
            del s
            if progress:
                progress(n + 1, len(found))
        if clipped:
            from gaspprobe.scenes.formats.base import warn

            warn(f"{src}: {clipped} depth pixel(s) beyond 65.535 could not be stored as uint16 mm and became 0")
        return run.complete(scenes=names, source_formats=formats)


# --------------------------------------------------------------------------- index
def write_index(path: str | Path, out: str | Path | None = None, *, format: str | None = None,
                progress: Callable[[int, int], None] | None = None):
    """A parquet table with one row per scene (``INDEX_COLUMNS``), written atomically to ``out``
    (default ``<path>/scenes.parquet``, with a CSV twin). Scenes are read one at a time, so memory does not grow
    with their number. A broken scene stops the index with its one-line error. Returns the table.
    """
    import pandas as pd

    from gaspprobe import io

    root = Path(path)
    rows = []
    found = find_scenes(root, format)
    for n, (f, p) in enumerate(found):
        s = f.read(p)
        info = scene_info(f, p, s)
        del s
        row = info.row()
        row["path"] = str(p.relative_to(root)) if p != root else "."
        rows.append(row)
        if progress:
            progress(n + 1, len(found))
    df = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    target = Path(out) if out is not None else root / "scenes.parquet"
    io.write_table(df, target)  # atomic parquet + CSV twin
    return df
