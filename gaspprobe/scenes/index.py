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
from gaspprobe.scenes.types import Scene

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


def load_scenes(path: str | Path, *, format: str | None = None, metric: bool | None = None,
                lazy: bool = False, cache: "SceneCache | None" = None) -> list:
    """Every scene under ``path`` (a scene, a folder of scenes, a dataset root), any format.

    This is the loader the probe, the trainer and the benchmark writer use. Raises DataError
    (one line, naming the file) for a malformed scene.

    With ``lazy=True`` nothing is read yet: each scene is a :class:`LazyScene` that reads its
    frames on first access, through ``cache`` (default: a shared :class:`SceneCache` keeping the
    4 most recently used scenes), so memory stays flat however many scenes there are. A
    ``scenes.parquet`` index in ``path`` (``gaspprobe scenes index``) supplies frame counts and
    sizes without opening scenes.
    """
    p = Path(path)
    if p.is_dir() and detect(p, format) is None and format is None and not any(p.iterdir()):
        from gaspprobe.scenes.scannet import load_scene as scannet_load

        scannet_load(p)  # its "empty folder (not a scene)" message
    found = find_scenes(p, format)
    if not lazy:
        return [f.read(sp, metric=metric) for f, sp in found]
    facts = _index_facts(p)
    return [LazyScene(f.name, sp, metric=metric, cache=cache, facts=facts.get(str(sp.resolve()))) for f, sp in found]


def require_metric(scenes: list, what: str) -> None:
    """Refuse scenes whose depth is not in metres where ``what`` (e.g. "the metric depth loss")
    needs metres: one-line DataError naming the scene and the ``metric`` field."""
    for s in scenes:
        if not s.metric:
            where = getattr(s, "_path", None) or s.name
            raise DataError(f"{what} needs metric depth, but scene {s.name!r} has metric = false (depth of "
                            "unknown scale: CO3Dv2, DL3DV, COLMAP); use a scale-invariant form or other scenes",
                            path=where)


def _index_facts(root: Path) -> dict[str, dict]:
    """{absolute scene path: index row} from ``root/scenes.parquet`` when present (else {})."""
    ip = root / "scenes.parquet"
    if not ip.is_file():
        return {}
    import pandas as pd

    try:
        df = pd.read_parquet(ip)
    except Exception:  # an unreadable index is only a missed shortcut: scenes are read instead
        return {}
    if not set(INDEX_COLUMNS) <= set(df.columns):
        return {}
    return {str((root / r["path"]).resolve()): r for r in df.to_dict("records")}


# --------------------------------------------------------------------------- lazy scenes
class SceneCache:
    """The most recently used ``max_scenes`` scenes, read in full; older ones are dropped (LRU)."""

    def __init__(self, max_scenes: int = 4):
        from collections import OrderedDict

        self.max_scenes = max(1, int(max_scenes))
        self._d: "OrderedDict[tuple[str, str, bool | None], Any]" = OrderedDict()
        self.reads = 0

    def get(self, fmt: str, path: Path, metric: bool | None):
        key = (fmt, str(path), metric)
        if key in self._d:
            self._d.move_to_end(key)
            return self._d[key]
        s = FORMATS.get(fmt).read(path, metric=metric)
        self.reads += 1
        self._d[key] = s
        while len(self._d) > self.max_scenes:
            self._d.popitem(last=False)
        return s

    def clear(self) -> None:
        self._d.clear()


DEFAULT_CACHE = SceneCache()

_HEAVY = ("rgb", "depth", "K", "cam_to_world", "objects", "frame_ids", "room", "instance")


def _lazy_field(name: str):
    def get(self):
        if name in self._set:
            return self._set[name]
        return getattr(self._full(), name)

    def set_(self, value):
        self._set[name] = value

    return property(get, set_)


class LazyScene(Scene):
    """A Scene whose frames are read on first access (through a :class:`SceneCache`).

    ``name``, ``metric`` and, when a scene index gave them, ``num_frames`` and ``size`` are
    known without reading. Pickling keeps only the format and path, so a data-loader worker
    reads the scene itself instead of receiving its frames.
    """

    def __init__(self, fmt: str, path: str | Path, *, metric: bool | None = None,
                 cache: SceneCache | None = None, facts: dict | None = None):
        self.__dict__["_set"] = {}
        self._fmt, self._path, self._metric_override = fmt, Path(path), metric
        self._cache = cache
        self._facts = dict(facts) if facts else None

    @property
    def name(self) -> str:  # known without reading: the index, or the format's naming rule
        if "name" in self._set:
            return self._set["name"]
        if self._facts:
            return str(self._facts["scene"])
        f = FORMATS.get(self._fmt)
        return f.scene_name(self._path) if f.scene_name else self._path.name

    @name.setter
    def name(self, v: str) -> None:
        self._set["name"] = v

    @property
    def metric(self) -> bool:  # the override, the index, else the scene itself (ScanNet keeps it per scene)
        if "metric" in self._set:
            return self._set["metric"]
        if self._metric_override is not None:
            return self._metric_override
        if self._facts:
            return bool(self._facts["metric"])
        return self._full().metric

    @metric.setter
    def metric(self, v: bool) -> None:
        self._set["metric"] = v

    def _full(self):
        return (self._cache or DEFAULT_CACHE).get(self._fmt, self._path, self._metric_override)

    def take(self, idx) -> Scene:
        """Frames ``idx`` only: from the cache when the scene is read already, else through the
        format's ``read_frames`` (only those images decoded; the training loader's path), else a
        full read."""
        idx = [int(i) for i in idx]
        f = FORMATS.get(self._fmt)
        heavy = any(k in self._set for k in _HEAVY)
        if self.loaded or heavy or f.read_frames is None:
            return Scene.subset(self, idx)  # through the properties: overrides and the cache honoured
        s = f.read_frames(self._path, idx, metric=self._metric_override)
        s.name = self.name
        if "metric" in self._set:
            s.metric = self._set["metric"]
        return s

    @property
    def loaded(self) -> bool:
        c = self._cache or DEFAULT_CACHE
        return (self._fmt, str(self._path), self._metric_override) in c._d

    @property
    def num_frames(self) -> int:
        return int(self._facts["frames"]) if self._facts else self._full().num_frames

    @property
    def size(self) -> tuple[int, int]:
        return (int(self._facts["height"]), int(self._facts["width"])) if self._facts else self._full().size

    def __getstate__(self):
        return {"fmt": self._fmt, "path": str(self._path), "metric": self._metric_override, "facts": self._facts,
                "set": self._set}

    def __setstate__(self, st):
        self.__init__(st["fmt"], st["path"], metric=st["metric"], facts=st["facts"])
        self._set.update(st["set"])

    def __repr__(self) -> str:
        return f"LazyScene({self._fmt!r}, {str(self._path)!r}, loaded={self.loaded})"

    def __eq__(self, other):
        return self is other

    __hash__ = object.__hash__


for n in _HEAVY:
    setattr(LazyScene, n, _lazy_field(n))


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
