"""COLMAP sparse models (``cameras`` + ``images``, text or binary) with a depth folder beside them.

Layout (``colmap`` mapper / ``image_undistorter`` output)::

    <scene>/sparse/0/{cameras,images,points3D}.{txt,bin}   (or sparse/ or the scene folder itself)
    <scene>/images/<NAME>                                   NAME as in images.txt
    <scene>/depth/<NAME stem>.png | .npy                    uint16 mm, or float (any scale)
    or, in a COLMAP dense workspace (``image_undistorter`` + ``patch_match_stereo``):
    <dense>/sparse/{cameras,images}.bin, <dense>/images/<NAME>,
    <dense>/stereo/depth_maps/<NAME>.geometric.bin (else .photometric.bin)

Conventions converted (colmap.github.io/format.html):

- ``images`` store WORLD-TO-CAMERA as a unit quaternion (QW, QX, QY, QZ) and translation
  (TX, TY, TZ) in the OpenCV camera: camera-to-world is [R^T | -R^T t].
- COLMAP puts the centre of the upper-left pixel at (0.5, 0.5): cx, cy are reduced by 0.5.
- SIMPLE_PINHOLE / PINHOLE are used as they are; distorted models (SIMPLE_RADIAL, RADIAL, OPENCV,
  FULL_OPENCV, OPENCV_FISHEYE ...) with all-zero coefficients too; otherwise undistorted with OpenCV
  when installed, else refused naming the camera.
- COLMAP's own depth maps (``.bin``): a text header ``width&height&channels&`` then float32 values
  of a [W, H] array in column-major order (x fastest); planar z in the model's units, 0 = invalid.
- Depth is NOT metric by default: a reconstruction has an arbitrary scale (MVS depth maps are in
  its units). Pass ``metric=True`` when the model was scaled to metres.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from gaspprobe.errors import DataError
from gaspprobe.scenes.formats import base
from gaspprobe.scenes.formats.base import SceneFormat

# model id -> (name, number of params); from COLMAP's src/colmap/sensor/models.h
MODELS = {0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
          4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
          8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12)}
MODEL_IDS = {n: (i, k) for i, (n, k) in MODELS.items()}


def model_dir(path: Path) -> Path | None:
    """The folder holding cameras.* and images.* (sparse/0, sparse, or the folder itself)."""
    for d in (path / "sparse" / "0", path / "sparse", path):
        for ext in (".bin", ".txt"):
            if (d / f"cameras{ext}").is_file() and (d / f"images{ext}").is_file():
                return d
    return None


def detect(path: Path) -> bool:
    return model_dir(path) is not None and (path / "images").is_dir()


# --------------------------------------------------------------------------- parsing
def read_cameras_txt(p: Path) -> dict[int, dict]:
    cams: dict[int, dict] = {}
    for ln, line in enumerate(_lines(p), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        t = line.split()
        try:
            cid, model, w, h = int(t[0]), t[1], int(t[2]), int(t[3])
            params = [float(x) for x in t[4:]]
        except (IndexError, ValueError):
            raise DataError(f"line {ln}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]", path=p) from None
        if model not in MODEL_IDS:
            raise DataError(f"line {ln}: unknown camera model {model!r}", path=p)
        if len(params) != MODEL_IDS[model][1]:
            raise DataError(f"line {ln}: {model} has {MODEL_IDS[model][1]} params, got {len(params)}", path=p)
        cams[cid] = {"model": model, "width": w, "height": h, "params": params}
    return cams


def read_images_txt(p: Path) -> list[dict]:
    # two lines per image; the second (its 2D points) may be EMPTY, so blank lines are not skipped
    lines = [ln for ln in _lines(p) if not ln.lstrip().startswith("#")]
    while lines and not lines[-1].strip():
        lines.pop()
    ims = []
    for k in range(0, len(lines), 2):
        t = lines[k].split()
        try:
            iid = int(t[0])
            q = [float(x) for x in t[1:5]]
            tv = [float(x) for x in t[5:8]]
            cid = int(t[8])
            name = " ".join(t[9:])
        except (IndexError, ValueError):
            raise DataError(f"line {k + 1} (comments skipped): expected IMAGE_ID QW QX QY QZ TX TY TZ "
                            "CAMERA_ID NAME", path=p) from None
        if not name:
            raise DataError(f"image {iid}: no NAME", path=p)
        ims.append({"id": iid, "q": q, "t": tv, "camera_id": cid, "name": name})
    return ims


def _lines(p: Path) -> list[str]:
    try:
        return p.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"unreadable ({type(e).__name__})", path=p) from None


class _Reader:
    def __init__(self, p: Path):
        self.p = p
        try:
            self.b = p.read_bytes()
        except OSError as e:
            raise DataError(f"unreadable ({type(e).__name__})", path=p) from None
        self.o = 0

    def take(self, fmt: str) -> tuple:
        n = struct.calcsize("<" + fmt)
        if self.o + n > len(self.b):
            raise DataError(f"truncated binary file (ends at byte {len(self.b)})", path=self.p)
        v = struct.unpack_from("<" + fmt, self.b, self.o)
        self.o += n
        return v

    def cstr(self) -> str:
        end = self.b.find(b"\x00", self.o)
        if end < 0:
            raise DataError("truncated binary file (image name not terminated)", path=self.p)
        s = self.b[self.o:end].decode("utf-8", "replace")
        self.o = end + 1
        return s


def read_cameras_bin(p: Path) -> dict[int, dict]:
    r = _Reader(p)
    (n,) = r.take("Q")
    cams = {}
    for _ in range(n):
        cid, mid, w, h = r.take("iiQQ")
        if mid not in MODELS:
            raise DataError(f"camera {cid}: unknown model id {mid}", path=p)
        name, k = MODELS[mid]
        cams[cid] = {"model": name, "width": int(w), "height": int(h), "params": list(r.take("d" * k))}
    return cams


def read_images_bin(p: Path) -> list[dict]:
    r = _Reader(p)
    (n,) = r.take("Q")
    ims = []
    for _ in range(n):
        (iid,) = r.take("i")
        q = list(r.take("dddd"))
        t = list(r.take("ddd"))
        (cid,) = r.take("i")
        name = r.cstr()
        (npts,) = r.take("Q")
        r.take("ddq" * npts) if npts else None
        ims.append({"id": iid, "q": q, "t": t, "camera_id": cid, "name": name})
    return ims


def read_model(d: Path) -> tuple[dict[int, dict], list[dict], Path, Path]:
    """(cameras, images, cameras file, images file) of a model folder, binary preferred."""
    if (d / "cameras.bin").is_file() and (d / "images.bin").is_file():
        return read_cameras_bin(d / "cameras.bin"), read_images_bin(d / "images.bin"), d / "cameras.bin", d / "images.bin"
    return read_cameras_txt(d / "cameras.txt"), read_images_txt(d / "images.txt"), d / "cameras.txt", d / "images.txt"


def camera_K(cam: dict) -> tuple[np.ndarray, list[float], bool]:
    """(K in COLMAP's 0.5-centre convention, distortion coefficients in OpenCV order, fisheye?)."""
    m, p = cam["model"], cam["params"]
    if m == "SIMPLE_PINHOLE":
        return base.K_from(p[0], p[0], p[1], p[2]), [], False
    if m == "PINHOLE":
        return base.K_from(*p[:4]), [], False
    if m == "SIMPLE_RADIAL":
        return base.K_from(p[0], p[0], p[1], p[2]), [p[3], 0.0, 0.0, 0.0], False
    if m == "RADIAL":
        return base.K_from(p[0], p[0], p[1], p[2]), [p[3], p[4], 0.0, 0.0], False
    if m == "OPENCV":  # fx fy cx cy k1 k2 p1 p2
        return base.K_from(*p[:4]), list(p[4:8]), False
    if m == "FULL_OPENCV":  # fx fy cx cy k1 k2 p1 p2 k3 k4 k5 k6
        return base.K_from(*p[:4]), list(p[4:12]), False
    if m == "OPENCV_FISHEYE":  # fx fy cx cy k1 k2 k3 k4
        return base.K_from(*p[:4]), list(p[4:8]), True
    if m == "SIMPLE_RADIAL_FISHEYE":
        return base.K_from(p[0], p[0], p[1], p[2]), [p[3], 0.0, 0.0, 0.0], True
    if m == "RADIAL_FISHEYE":
        return base.K_from(p[0], p[0], p[1], p[2]), [p[3], p[4], 0.0, 0.0], True
    return base.K_from(*p[:4]), [], False  # FOV, THIN_PRISM_FISHEYE: refused by read_colmap


# --------------------------------------------------------------------------- reading
def read_colmap(path: Path, *, name: str, image_dir: Path, depth_dir: Path, metric: bool,
                model: Path | None = None, depth_scale: float = 1e-3):
    """A COLMAP model + images + depth folder -> Scene (see the module docstring)."""
    d = model or model_dir(path)
    if d is None:
        raise DataError("no COLMAP model (expected sparse/0/cameras.txt|bin and images.txt|bin)", path=path)
    cams, ims, cfile, ifile = read_model(d)
    if not ims:
        raise DataError("no registered images", path=ifile)
    ims = sorted(ims, key=lambda im: base.natural_key(im["name"]))
    frames = []
    for idx, im in enumerate(ims):
        what = f"image {im['name']!r}"
        cam = cams.get(im["camera_id"])
        if cam is None:
            raise DataError(f"{what}: CAMERA_ID {im['camera_id']} not in {cfile.name}", path=ifile)
        R = base.quat_to_rotmat(*im["q"], path=ifile, what=f"{what}: QW QX QY QZ")
        w2c = base.pose(R, im["t"])
        if not np.isfinite(w2c).all():
            raise DataError(f"{what}: TX TY TZ not finite", path=ifile)
        ip = image_dir / im["name"]
        rgb = base.read_rgb(ip)
        H, W = rgb.shape[:2]
        if (W, H) != (cam["width"], cam["height"]):
            raise DataError(f"{what}: image is {W}x{H} but camera {im['camera_id']} is "
                            f"{cam['width']}x{cam['height']}", path=ip)
        if cam["model"] in ("FOV", "THIN_PRISM_FISHEYE"):
            raise DataError(f"camera {im['camera_id']}: model {cam['model']} is not supported (undistort with "
                            "colmap image_undistorter first)", path=cfile)
        K_edge, dist, fisheye = camera_K(cam)
        K = base.check_K(base.edge_to_centre(K_edge), cfile, f"camera {im['camera_id']}")
        depth = _depth(depth_dir, path, im["name"], ip, (H, W), depth_scale, ifile, what)
        if any(dist):
            rgb, depth = base.undistort(rgb, depth, K, dist, fisheye, cfile,
                                        f"camera {im['camera_id']} ({cam['model']} with distortion)")
        frames.append({"rgb": rgb, "depth": depth, "K": K, "c2w": base.invert(w2c), "id": idx, "file": ip})
    return base.make_scene(name, frames, metric=metric, path=path)


def _depth(depth_dir: Path, root: Path, name: str, ip: Path, size: tuple[int, int], scale: float, ifile: Path,
           what: str) -> np.ndarray:
    for ext in (".png", ".npy"):
        dp = depth_dir / (Path(ip.name).stem + ext)
        if dp.is_file():
            if ext == ".npy":
                return base.read_depth_npy(dp, size)
            a = base.read_png16(dp)
            base.check_size(a, size, dp)
            return a.astype(np.float32) * np.float32(scale)
    for kind in ("geometric", "photometric"):
        dp = root / "stereo" / "depth_maps" / f"{name}.{kind}.bin"
        if dp.is_file():
            return read_dense_bin(dp, size)
    raise DataError(f"{what}: no depth {Path(ip.name).stem}.png|.npy in {depth_dir} nor "
                    f"stereo/depth_maps/{name}.geometric.bin", path=ifile)


def read_dense_bin(p: Path, size: tuple[int, int]) -> np.ndarray:
    """A COLMAP depth map: ``W&H&C&`` then float32 [W, H, C] in column-major order (x fastest,
    i.e. the image row by row; COLMAP's ``read_write_dense.py``) -> [H, W]."""
    b = _Reader(p).b
    head, amp = b"", 0
    for k, ch in enumerate(b[:64]):
        if ch == ord("&"):
            amp += 1
            if amp == 3:
                head, body = b[:k], b[k + 1:]
                break
    if amp != 3:
        raise DataError("not a COLMAP depth map (no 'width&height&channels&' header)", path=p)
    try:
        w, h, c = (int(x) for x in head.split(b"&"))
    except ValueError:
        raise DataError("not a COLMAP depth map (header not integers)", path=p) from None
    if len(body) != 4 * w * h * c or c != 1:
        raise DataError(f"header says {w}x{h}x{c} floats but holds {len(body) // 4} (depth needs 1 channel)", path=p)
    a = np.frombuffer(body, dtype="<f4").reshape((w, h), order="F").T
    base.check_size(a, size, p)
    return np.where(np.isfinite(a) & (a > 0), a, 0.0).astype(np.float32)


def dense_bin_bytes(depth: np.ndarray) -> bytes:
    H, W = depth.shape
    return f"{W}&{H}&1&".encode() + np.asarray(depth, dtype="<f4").T.tobytes(order="F")


def read(path: Path, *, metric: bool | None = None):
    path = Path(path)
    return read_colmap(path, name=path.name, image_dir=path / "images", depth_dir=path / "depth",
                       metric=False if metric is None else metric)


# --------------------------------------------------------------------------- writing (tests)
def model_entries(scene) -> tuple[list[dict], list[dict]]:
    """(cameras, images) of ``scene`` in COLMAP's conventions (one PINHOLE camera per distinct K)."""
    _, _, K, c2w = base.scene_arrays(scene)
    H, W = scene.size
    cams: list[dict] = []
    ims: list[dict] = []
    for f in range(K.shape[0]):
        Ke = base.centre_to_edge(K[f])
        params = [Ke[0, 0], Ke[1, 1], Ke[0, 2], Ke[1, 2]]
        for c in cams:
            if np.allclose(c["params"], params, rtol=0, atol=1e-9):
                cid = c["id"]
                break
        else:
            cid = len(cams) + 1
            cams.append({"id": cid, "model": "PINHOLE", "width": W, "height": H, "params": params})
        w2c = base.invert(c2w[f])
        ims.append({"id": f + 1, "q": base.rotmat_to_quat(w2c[:3, :3]).tolist(), "t": w2c[:3, 3].tolist(),
                    "camera_id": cid, "name": f"frame_{f + 1:05d}.png"})
    return cams, ims


def write_model(d: Path, cams: list[dict], ims: list[dict], binary: bool) -> None:
    d.mkdir(parents=True, exist_ok=True)
    if binary:
        b = struct.pack("<Q", len(cams))
        for c in cams:
            mid, _ = MODEL_IDS[c["model"]]
            b += struct.pack("<iiQQ", c["id"], mid, c["width"], c["height"]) + struct.pack("<" + "d" * len(c["params"]), *c["params"])
        (d / "cameras.bin").write_bytes(b)
        b = struct.pack("<Q", len(ims))
        for im in ims:
            b += struct.pack("<i", im["id"]) + struct.pack("<7d", *im["q"], *im["t"]) + struct.pack("<i", im["camera_id"])
            b += im["name"].encode() + b"\x00" + struct.pack("<Q", 1) + struct.pack("<ddq", 1.5, 2.5, -1)
        (d / "images.bin").write_bytes(b)
        (d / "points3D.bin").write_bytes(struct.pack("<Q", 0))
        return
    lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
             f"# Number of cameras: {len(cams)}"]
    lines += [f"{c['id']} {c['model']} {c['width']} {c['height']} " + " ".join(repr(float(x)) for x in c["params"])
              for c in cams]
    (d / "cameras.txt").write_text("\n".join(lines) + "\n")
    lines = ["# Image list with two lines of data per image:",
             "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
             "#   POINTS2D[] as (X, Y, POINT3D_ID)", f"# Number of images: {len(ims)}, mean observations per image: 0"]
    for k, im in enumerate(ims):
        lines.append(" ".join([str(im["id"]), *(repr(float(x)) for x in im["q"] + im["t"]), str(im["camera_id"]), im["name"]]))
        lines.append("" if k % 2 == 0 else "1.5 2.5 -1")  # COLMAP writes an empty line for an image with no points
    (d / "images.txt").write_text("\n".join(lines) + "\n")
    (d / "points3D.txt").write_text("# 3D point list with one line of data per point:\n")


def write(scene, path: Path, *, binary: bool = False, dense: bool = False) -> Path:
    """Test writer: sparse/0/{cameras,images,points3D}.txt|bin, images/, depth/ (uint16 mm); with
    ``dense`` a COLMAP dense workspace instead: sparse/*.bin, images/, stereo/depth_maps/*.geometric.bin."""
    path = Path(path)
    rgb, depth, _, _ = base.scene_arrays(scene)
    cams, ims = model_entries(scene)
    for f, im in enumerate(ims):
        base.write_file(path / "images" / im["name"], base.image_bytes(rgb[f]))
        if dense:
            base.write_file(path / "stereo" / "depth_maps" / f"{im['name']}.geometric.bin", dense_bin_bytes(depth[f]))
        else:
            base.write_file(path / "depth" / (Path(im["name"]).stem + ".png"),
                            base.png16_bytes(base.metres_to_mm(depth[f])))
    write_model(path / "sparse" if dense else path / "sparse" / "0", cams, ims, binary or dense)
    return path


FORMAT = SceneFormat(
    name="colmap", detect=detect, read=read, write=write, metric=False, priority=10,
    summary="sparse/0/{cameras,images}.txt|bin (world-to-camera quaternion, 0.5-centred) + images/ + depth/",
    depth_precision="1 mm (uint16 PNG) or float (.npy); scale of the reconstruction")
