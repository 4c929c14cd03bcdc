"""Reader and writer for the ScanNet frame-export layout (the on-disk form of every scene).

Layout of one scene folder (as written by ScanNet's ``SensReader/python/reader.py``)::

    color/<i>.jpg|png        8-bit RGB, unpadded frame index i
    depth/<i>.png            16-bit depth in millimetres, 0 = invalid
    pose/<i>.txt             4x4 camera-to-world (OpenCV camera axes), 4 lines of 4 numbers
    intrinsic/intrinsic_color.txt   4x4, K in the top-left 3x3 (integer pixel centres); a plain
                                    3x3 file is accepted too
    intrinsic/intrinsic_depth.txt   4x4 (written for completeness; see below)
    objects.json             optional: {"objects": [Object3D.to_json()...], "room": {...},
                             "metric": false only when depth has an unknown scale}
    instance/<i>.png         optional (synthetic scenes): 16-bit object-id map, 0 = none, id + 1

Reading (:func:`load_scene`) follows what real exports contain: file names sorted numerically;
depth maps whose resolution differs from colour are resized to the colour resolution with
nearest-neighbour (depth is treated as registered to colour, as ScanNet pipelines do); frames
whose pose has inf/nan (or an all-zero rotation) are skipped with one warning; a missing
``objects.json`` means no annotations. Every malformed input raises a one-line
:class:`~gaspprobe.errors.DataError` naming the file.

Writing (:func:`save_scene`) is atomic at the scene level: everything goes into a hidden temp
folder beside the target (``.<name>.tmp-*``, which readers ignore and which has no
``intrinsic/`` until the end), which is renamed into place once complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gaspprobe.errors import DataError
from gaspprobe.scenes.types import Object3D, Scene

_NUM = re.compile(r"^\d+$")
COLOR_EXT = (".jpg", ".jpeg", ".png")


class SceneWarning(UserWarning):
    """A recoverable oddity in a scene folder (e.g. frames skipped for invalid poses)."""


# --------------------------------------------------------------------------- small readers
def _numbered(folder: Path, exts: tuple[str, ...]) -> dict[int, Path]:
    """{frame index: file} for files named ``<digits><ext>`` (hidden/other files ignored)."""
    out: dict[int, Path] = {}
    for p in folder.iterdir():
        if p.name.startswith(".") or p.suffix.lower() not in exts or not _NUM.match(p.stem):
            continue
        i = int(p.stem)
        if i in out:
            raise DataError(f"two files for frame {i} ({out[i].name}, {p.name})", path=folder)
        out[i] = p
    return out


def read_matrix(path: Path, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    """A whitespace-separated numeric matrix file -> float64 array of ``shape`` (DataError if not)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"unreadable ({type(e).__name__})", path=path) from None
    rows = [r.split() for r in text.strip().splitlines() if r.strip()]
    try:
        vals = [[float(x) for x in r] for r in rows]
    except ValueError:
        raise DataError("not a numeric matrix", path=path) from None
    if len(vals) != shape[0] or any(len(r) != shape[1] for r in vals):
        got = f"{len(vals)} rows of {sorted({len(r) for r in vals})} values"
        raise DataError(f"expected a {shape[0]}x{shape[1]} matrix, got {got}", path=path)
    return np.asarray(vals, dtype=np.float64)


def _rows(path: Path) -> int:
    try:
        return len([r for r in path.read_text(encoding="utf-8").strip().splitlines() if r.strip()])
    except (OSError, UnicodeDecodeError):
        return -1


def _open_image(path: Path):
    from PIL import Image

    try:
        im = Image.open(path)
        im.load()  # decode now: a truncated file fails here, not later
        return im
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for bad files
        raise DataError(f"unreadable image ({type(e).__name__}: {e})", path=path) from None


def read_color(path: Path) -> np.ndarray:
    """uint8 [H, W, 3]."""
    im = _open_image(path)
    if im.mode not in ("RGB", "RGBA", "L", "P", "CMYK", "YCbCr"):
        raise DataError(f"colour image has mode {im.mode!r}, expected 8-bit RGB", path=path)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def read_depth_mm(path: Path) -> np.ndarray:
    """uint16 [H, W] millimetres."""
    im = _open_image(path)
    if im.mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise DataError(f"depth is not a 16-bit PNG (mode {im.mode!r})", path=path)
    a = np.asarray(im)
    if im.mode == "I":  # some writers produce 32-bit containers holding 16-bit values
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise DataError("depth is not 16-bit (values outside 0..65535)", path=path)
    return a.astype(np.uint16)


def _nearest_resize(a: np.ndarray, H: int, W: int) -> np.ndarray:
    """Nearest-neighbour resize of [h, w] to [H, W] mapping pixel centres ((u+0.5)*w/W)."""
    h, w = a.shape[:2]
    if (h, w) == (H, W):
        return a
    ys = np.minimum(((np.arange(H) + 0.5) * h / H).astype(np.int64), h - 1)
    xs = np.minimum(((np.arange(W) + 0.5) * w / W).astype(np.int64), w - 1)
    return a[ys[:, None], xs[None, :]]


def _valid_pose(T: np.ndarray) -> bool:
    return bool(np.isfinite(T).all()) and abs(np.linalg.det(T[:3, :3])) > 1e-6


# --------------------------------------------------------------------------- reader
def load_scene(path: str | Path, *, with_instance: bool = True, frames: "list[int] | None" = None) -> Scene:
    """Read a scene folder in the ScanNet frame-export layout.

    Args:
        path: the scene folder.
        with_instance: read ``instance/`` when present.
        frames: positions (0-based, among the frames with valid poses, as the full scene numbers
            them) to read; the others' images are not decoded (the training loader reads a clip's
            frames only). None: all.
    Returns:
        :class:`Scene` at the colour resolution; ``frame_ids`` are the on-disk indices kept.
    Raises:
        DataError: one line naming the file, for any missing or malformed input.
    """
    root = Path(path)
    if not root.exists():
        raise DataError("scene folder not found", path=root)
    if not root.is_dir():
        raise DataError("not a folder", path=root)
    cdir, ddir, pdir = root / "color", root / "depth", root / "pose"
    for d in (cdir, ddir, pdir):
        if not d.is_dir():
            if not any(root.iterdir()):
                raise DataError("empty folder (not a scene)", path=root)
            raise DataError("missing folder (not a ScanNet-layout scene)", path=d)
    colors = _numbered(cdir, COLOR_EXT)
    depths = _numbered(ddir, (".png",))
    poses = _numbered(pdir, (".txt",))
    if not colors:
        raise DataError("no frames (expected <i>.jpg or <i>.png)", path=cdir)
    for name, got in (("depth", depths), ("pose", poses)):
        if set(got) != set(colors):
            miss = sorted(set(colors) - set(got))
            extra = sorted(set(got) - set(colors))
            what = (f"missing frame {miss[0]}" if miss else f"extra frame {extra[0]}")
            raise DataError(f"{len(got)} files but color/ has {len(colors)} ({what})", path=root / name)
    kpath = root / "intrinsic" / "intrinsic_color.txt"
    try:
        kc = read_matrix(kpath)
    except DataError:
        kc = read_matrix(kpath, (3, 3)) if kpath.exists() and _rows(kpath) == 3 else read_matrix(kpath)
    K = kc[:3, :3].astype(np.float32)
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DataError("intrinsics are not finite and positive", path=root / "intrinsic" / "intrinsic_color.txt")

    ids = sorted(colors)
    kept: list[int] = []
    Ts = []
    bad: list[int] = []
    for i in ids:
        T = read_matrix(poses[i])
        if _valid_pose(T):
            kept.append(i)
            Ts.append(T)
        else:
            bad.append(i)
    if not kept:  # before the warning: one error line, not a warning and an error
        raise DataError("every frame has an invalid (inf/nan) pose", path=pdir)
    if bad:
        warnings.warn(f"{root}: skipped {len(bad)} frame(s) with invalid (inf/nan) poses, first {bad[0]}",
                      SceneWarning, stacklevel=2)

    rgbs, deps, insts = [], [], []
    H = W = None
    idir = root / "instance"
    inst_files = _numbered(idir, (".png",)) if with_instance and idir.is_dir() else {}
    use_inst = bool(inst_files) and set(inst_files) >= set(kept)
    if frames is not None:
        pos = [int(f) for f in frames]
        if any(f < 0 or f >= len(kept) for f in pos):
            raise DataError(f"frames {pos} out of range: the scene has {len(kept)} frames", path=root)
        kept, Ts = [kept[f] for f in pos], [Ts[f] for f in pos]
    for i in kept:
        c = read_color(colors[i])
        if H is None:
            H, W = c.shape[:2]
        elif c.shape[:2] != (H, W):
            raise DataError(f"colour size {c.shape[1]}x{c.shape[0]} differs from frame {kept[0]} ({W}x{H})",
                            path=colors[i])
        d = read_depth_mm(depths[i])
        rgbs.append(c)
        deps.append(_nearest_resize(d, H, W))
        if use_inst:
            m = read_depth_mm(inst_files[i])  # same 16-bit container
            insts.append(_nearest_resize(m, H, W))
    objects: list[Object3D] = []
    room = None
    metric = True
    op = root / "objects.json"
    if op.exists():
        try:
            meta = json.loads(op.read_text(encoding="utf-8"))
            objects = [Object3D.from_json(o) for o in meta.get("objects", [])]
            room = meta.get("room")
            metric = meta.get("metric", True)
            if not isinstance(metric, bool):
                raise ValueError(f"'metric' must be true or false, got {metric!r}")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError,
                OverflowError) as e:  # OverflowError: int() of an "id": Infinity
            raise DataError(f"malformed objects.json ({type(e).__name__}: {e})", path=op) from None
    F = len(kept)
    return Scene(
        rgb=torch.from_numpy(np.stack(rgbs)),
        depth=torch.from_numpy(np.stack(deps).astype(np.float32) / 1000.0),
        K=torch.from_numpy(np.broadcast_to(K, (F, 3, 3)).copy()),
        cam_to_world=torch.from_numpy(np.stack(Ts).astype(np.float32)),
        objects=objects, name=root.name, frame_ids=kept, room=room, metric=metric,
        instance=torch.from_numpy(np.stack(insts).astype(np.int32) - 1).to(torch.int16) if use_inst else None,
    )


def is_scene_dir(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".") and (path / "color").is_dir()


def load_scenes(path: str | Path) -> list[Scene]:
    """A scene folder, or a folder of scene folders (sorted by name; hidden folders ignored)."""
    root = Path(path)
    if not root.is_dir():
        raise DataError("not found or not a folder", path=root)
    if (root / "color").is_dir():
        return [load_scene(root)]
    subs = sorted(p for p in root.iterdir() if is_scene_dir(p))
    if not subs:
        raise DataError("no scene folders (expected color/ depth/ pose/ intrinsic/ inside)", path=root)
    return [load_scene(p) for p in subs]


def check_scene(path: str | Path) -> list[str]:
    """Problems with a scene folder (or each scene of a folder of scenes); empty when fine."""
    root = Path(path)
    if root.is_dir() and not (root / "color").is_dir():
        subs = sorted(p for p in root.iterdir() if is_scene_dir(p))
        if subs:
            return [msg for p in subs for msg in check_scene(p)]
    problems: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            s = load_scene(root)
        except DataError as e:
            return [str(e)]
    problems += [str(w.message) for w in caught if issubclass(w.category, SceneWarning)]
    zero = [s.frame_ids[f] for f in range(s.num_frames) if not bool((s.depth[f] > 0).any())]
    if zero:
        problems.append(f"{root / 'depth'}: {len(zero)} frame(s) with no valid depth, first {zero[0]}")
    R = s.cam_to_world[:, :3, :3].double()
    err = (R.transpose(1, 2) @ R - torch.eye(3, dtype=torch.float64)).abs().amax(dim=(1, 2))
    if bool((err > 1e-3).any()):
        f = int(torch.nonzero(err > 1e-3)[0, 0])
        problems.append(f"{root / 'pose' / (str(s.frame_ids[f]) + '.txt')}: rotation is not orthonormal "
                        f"(max |R^T R - I| = {float(err[f]):.2g})")
    if s.instance is not None and s.objects and int(s.instance.max()) >= len(s.objects):
        problems.append(f"{root / 'instance'}: object id {int(s.instance.max())} but objects.json lists "
                        f"{len(s.objects)} objects")
    return problems


# --------------------------------------------------------------------------- writer
def _fmt_matrix(M: np.ndarray) -> str:
    # 9 significant digits round-trip float32 exactly
    return "\n".join(" ".join(f"{float(x):.9g}" for x in row) for row in M) + "\n"


def _png_bytes(a: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _jpg_bytes(a: np.ndarray, quality: int = 95) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def scene_to_files(scene: Scene, color_format: str = "png") -> dict[str, bytes]:
    """Every file of the scene folder as {relative path: bytes} (deterministic)."""
    if color_format not in ("png", "jpg"):
        raise ValueError(f"color_format: expected 'png' or 'jpg', got {color_format!r}")
    K = scene.K.double().numpy()
    if not np.allclose(K, K[:1], rtol=0, atol=1e-6):
        raise ValueError("scene.K: the ScanNet layout stores one intrinsic matrix; frames differ")
    K4 = np.eye(4)
    K4[:3, :3] = K[0]
    ids = list(scene.frame_ids or range(scene.num_frames))
    depth = scene.depth.double().numpy()
    mm = np.round(depth * 1000.0)
    mm = np.where((mm > 65535) | ~np.isfinite(mm) | (mm < 0), 0, mm).astype(np.uint16)
    files: dict[str, bytes] = {}
    rgb = scene.rgb.numpy()
    poses = scene.cam_to_world.numpy()
    for f, i in enumerate(ids):
        files[f"color/{i}.{color_format}"] = _png_bytes(rgb[f]) if color_format == "png" else _jpg_bytes(rgb[f])
        files[f"depth/{i}.png"] = _png_bytes(mm[f])
        files[f"pose/{i}.txt"] = _fmt_matrix(poses[f]).encode()
        if scene.instance is not None:
            files[f"instance/{i}.png"] = _png_bytes((scene.instance[f].numpy().astype(np.int32) + 1).astype(np.uint16))
    meta: dict[str, Any] = {"objects": [o.to_json() for o in scene.objects]}
    if scene.room is not None:
        meta["room"] = scene.room
    if not scene.metric:  # depth of unknown scale, stored as if in metres: say so
        meta["metric"] = False
    files["objects.json"] = (json.dumps(meta, indent=1) + "\n").encode()
    files["intrinsic/intrinsic_color.txt"] = _fmt_matrix(K4).encode()
    files["intrinsic/intrinsic_depth.txt"] = _fmt_matrix(K4).encode()  # depth is stored registered to colour
    return files


def save_scene(scene: Scene, path: str | Path, *, color_format: str = "png", overwrite: bool = False) -> Path:
    """Write ``scene`` to folder ``path`` atomically (temp folder beside it, then rename).

    Args:
        scene: the scene; one K for all frames (the layout stores one intrinsic matrix).
        path: target folder; it must not exist unless ``overwrite``.
        color_format: ``"png"`` (lossless, default) or ``"jpg"`` (ScanNet's own choice).
        overwrite: replace an existing folder (the old one is removed only after the new one is
            complete).
    Returns:
        The scene folder path.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise DataError("already exists (pass overwrite=True to replace it)", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    files = scene_to_files(scene, color_format)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        # intrinsic/ last: a half-written temp folder (even if renamed by hand) fails to load
        for rel in sorted(files, key=lambda r: r.startswith("intrinsic/")):
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "wb") as fh:
                fh.write(files[rel])
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise
    return path
