"""What every scene format shares: the :class:`SceneFormat` entry and the conversions between
dataset conventions and the Scene contract (:mod:`gaspprobe.scenes.types`).

The contract, once more: OpenCV camera (x right, y down, z forward), ``cam_to_world``, ``K`` with
the centre of pixel (u, v) at (u, v), planar depth in metres with 0 = invalid. The helpers here
name each conversion once (``opengl_to_opencv``, ``edge_to_centre``, ``quat_to_rotmat``,
``rotvec_to_rotmat``, ``ray_to_planar``) so that every reader spells an axis flip or a half-pixel
shift the same way, and every refusal is a one-line :class:`~gaspprobe.errors.DataError` naming
the file and the field.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gaspprobe.errors import DataError

# camera-to-world in the OpenGL/Blender camera (x right, y up, z back) -> OpenCV camera, and back:
# right-multiplying by diag(1, -1, -1, 1) flips the camera's y and z axes (it is its own inverse).
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class SceneFormat:
    """One on-disk scene layout: how to recognise it, read it and (for tests) write it.

    ``detect(path)`` is cheap (a few ``stat`` calls) and true when ``path`` is ONE scene of this
    format; ``read(path)`` returns that scene in the contract; ``write(scene, path)`` lays a Scene
    out exactly as the dataset does (the round-trip tests' oracle; not a conversion tool).
    ``metric`` says whether the format's depth is in metres; ``priority`` orders detection (specific
    layouts before the generic nerfstudio/COLMAP folders they contain).
    """

    name: str
    detect: Callable[[Path], bool]
    read: Callable[..., Any]
    write: Callable[..., Path]
    metric: bool = True
    priority: int = 50
    summary: str = ""
    depth_precision: str = ""
    scene_name: Callable[[Path], str] | None = None  # the name read() gives, without reading (default: folder name)
    #: ``read_frames(path, frames, metric=None)``: only those frame positions (None: read + subset)
    read_frames: Callable[..., Any] | None = None


def warn(msg: str) -> None:
    """A recoverable oddity (a frame skipped for a missing pose or flagged bad): one SceneWarning."""
    from gaspprobe.scenes.scannet import SceneWarning  # one warning class for every format

    warnings.warn(msg, SceneWarning, stacklevel=3)


# --------------------------------------------------------------------------- files
_NUM_RE = re.compile(r"(\d+)")


def natural_key(name: str) -> list:
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return [int(t) if t.isdigit() else t for t in _NUM_RE.split(name)]


def read_json(path: Path) -> Any:
    try:
        if path.suffix == ".jgz" or path.name.endswith(".json.gz"):
            import gzip

            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return json.load(fh)
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, EOFError) as e:
        raise DataError(f"unreadable JSON ({type(e).__name__}: {e})", path=path) from None


def field(d: Any, key: str, path: Path, kind: type | tuple = (int, float)) -> Any:
    """``d[key]`` checked for type, else a one-line DataError naming the file and the field."""
    if not isinstance(d, dict) or key not in d:
        raise DataError(f"missing field {key!r}", path=path)
    v = d[key]
    if kind in ((int, float), float, int) and isinstance(v, bool):
        raise DataError(f"field {key!r}: expected a number, got {v!r}", path=path)
    if not isinstance(v, kind):
        raise DataError(f"field {key!r}: expected {getattr(kind, '__name__', 'a number')}, got {v!r}", path=path)
    if isinstance(v, float) and not np.isfinite(v):
        raise DataError(f"field {key!r}: not finite ({v})", path=path)
    return v


def matrix(v: Any, shape: tuple[int, ...], path: Path, what: str) -> np.ndarray:
    """A nested list -> float64 array of ``shape`` (DataError naming ``what`` otherwise)."""
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what}: not a numeric array", path=path) from None
    if a.shape != shape:
        raise DataError(f"{what}: expected shape {shape}, got {a.shape}", path=path)
    if not np.isfinite(a).all():
        raise DataError(f"{what}: not finite", path=path)
    return a


def read_rgb(path: Path) -> np.ndarray:
    from gaspprobe.scenes.scannet import read_color

    return read_color(path)


def read_png16(path: Path, what: str = "depth") -> np.ndarray:
    """A 16-bit PNG -> uint16 [H, W] (DataError naming the file when it is another dtype)."""
    from gaspprobe.scenes.scannet import _open_image

    im = _open_image(path)
    if im.mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise DataError(f"{what}: expected a 16-bit single-channel PNG, got mode {im.mode!r}", path=path)
    a = np.asarray(im)
    if im.mode == "I" and a.size and (a.min() < 0 or a.max() > 65535):
        raise DataError(f"{what}: values outside 0..65535 (not 16-bit)", path=path)
    return a.astype(np.uint16)


def read_depth_mm(path: Path, size: tuple[int, int]) -> np.ndarray:
    """uint16 millimetre PNG -> float32 metres [H, W] of exactly ``size`` (0 stays invalid)."""
    a = read_png16(path)
    check_size(a, size, path)
    return a.astype(np.float32) / 1000.0


def read_depth_npy(path: Path, size: tuple[int, int], *, max_depth: float = np.inf) -> np.ndarray:
    """A float ``.npy`` depth map -> float32 [H, W]; non-finite, <= 0 or > ``max_depth`` -> 0."""
    try:
        a = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except (OSError, ValueError) as e:
        raise DataError(f"unreadable .npy ({type(e).__name__}: {e})", path=path) from None
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not np.issubdtype(a.dtype, np.floating):
        raise DataError(f"depth: expected a float array, got dtype {a.dtype}", path=path)
    check_size(a, size, path)
    a = a.astype(np.float32)
    return np.where(np.isfinite(a) & (a > 0) & (a <= max_depth), a, 0.0).astype(np.float32)


def check_size(a: np.ndarray, size: tuple[int, int], path: Path, what: str = "depth") -> None:
    if a.ndim != 2 or tuple(a.shape) != tuple(size):
        raise DataError(f"{what}: size {tuple(a.shape)} differs from the image's {tuple(size)} (H, W)", path=path)


def png16_bytes(a: np.ndarray) -> bytes:
    from gaspprobe.scenes.scannet import _png_bytes

    return _png_bytes(np.ascontiguousarray(a, dtype=np.uint16))


def metres_to_mm(depth: np.ndarray) -> np.ndarray:
    """Metres -> uint16 millimetres as the datasets store them (out of range or invalid -> 0)."""
    mm = np.round(np.asarray(depth, dtype=np.float64) * 1000.0)
    return np.where(~np.isfinite(mm) | (mm < 0) | (mm > 65535), 0, mm).astype(np.uint16)


def write_file(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)


def image_bytes(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    kw = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format=fmt, **kw)
    return buf.getvalue()


# --------------------------------------------------------------------------- rotations
def check_rotation(R: np.ndarray, path: Path, what: str, tol: float = 1e-3) -> np.ndarray:
    """R must be a proper rotation (R^T R = I within ``tol``, det = +1): never a silent flip."""
    if not np.isfinite(R).all():
        raise DataError(f"{what}: not finite", path=path)
    err = float(np.abs(R.T @ R - np.eye(3)).max())
    if err > tol:
        raise DataError(f"{what}: not a rotation (max |R^T R - I| = {err:.2g})", path=path)
    if np.linalg.det(R) < 0:
        raise DataError(f"{what}: a reflection (det = -1), not a rotation", path=path)
    return R


def quat_to_rotmat(w: float, x: float, y: float, z: float, path: Path, what: str) -> np.ndarray:
    """Unit quaternion (w, x, y, z) -> 3x3 rotation; a quaternion far from unit norm is refused
    (it would scale the camera, which is never what a dataset means)."""
    q = np.asarray([w, x, y, z], dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not np.isfinite(q).all() or abs(n - 1.0) > 1e-3:
        raise DataError(f"{what}: quaternion norm {n:.4g} is not 1 (not a rotation)", path=path)
    w, x, y, z = q / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit quaternion (w, x, y, z) with w >= 0 (Shepperd's method, stable)."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif R[1, 1] > R[2, 2]:
        s = np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def rotvec_to_rotmat(v: Sequence[float]) -> np.ndarray:
    """Axis-angle (radians, axis * angle) -> rotation (Rodrigues)."""
    v = np.asarray(v, dtype=np.float64)
    th = float(np.linalg.norm(v))
    if th < 1e-12:
        return np.eye(3)
    k = v / th
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * Kx + (1 - np.cos(th)) * (Kx @ Kx)


def rotmat_to_rotvec(R: np.ndarray) -> np.ndarray:
    """Rotation -> axis-angle (through the quaternion: stable at 0 and near pi)."""
    w, x, y, z = rotmat_to_quat(R)
    s = np.sqrt(x * x + y * y + z * z)
    if s < 1e-12:
        return np.zeros(3)
    angle = 2 * np.arctan2(s, w)
    return np.array([x, y, z]) / s * angle


def pose(R: np.ndarray, t: Sequence[float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 (R^T, -R^T t): exact for rotations, unlike a general inverse."""
    R, t = T[:3, :3], T[:3, 3]
    return pose(R.T, -R.T @ t)


# --------------------------------------------------------------------------- intrinsics
def K_from(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def edge_to_centre(K_edge: np.ndarray) -> np.ndarray:
    """Intrinsics whose pixel (0, 0) has its centre at (0.5, 0.5) (COLMAP, nerfstudio, Hypersim,
    PyTorch3D's OpenCV conversion) -> the contract's integer pixel centres: cx, cy minus 0.5."""
    K = np.array(K_edge, dtype=np.float64)
    K[0, 2] -= 0.5
    K[1, 2] -= 0.5
    return K


def centre_to_edge(K: np.ndarray) -> np.ndarray:
    K = np.array(K, dtype=np.float64)
    K[0, 2] += 0.5
    K[1, 2] += 0.5
    return K


def check_K(K: np.ndarray, path: Path, what: str = "intrinsics") -> np.ndarray:
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DataError(f"{what}: focal lengths must be finite and positive", path=path)
    return K


def ray_to_planar(dist: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Distance along each pixel's ray -> planar z: z = d * f / ||(u - cx, (v - cy) fx/fy, fx)||.

    ``K`` uses integer pixel centres, so pixel (u, v)'s ray is K^-1 [u, v, 1]; its z component is 1
    and its length is sqrt(((u-cx)/fx)^2 + ((v-cy)/fy)^2 + 1), by which the distance is divided.
    """
    H, W = dist.shape
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    u = (np.arange(W) - cx) / fx
    v = (np.arange(H) - cy) / fy
    norm = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2 + 1.0)
    return (dist / norm).astype(np.float32)


# --------------------------------------------------------------------------- distortion
PINHOLE_MODELS = ("PINHOLE", "SIMPLE_PINHOLE")
DISTORTED_MODELS = ("OPENCV", "SIMPLE_RADIAL", "RADIAL", "FULL_OPENCV")
FISHEYE_MODELS = ("OPENCV_FISHEYE", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE", "FISHEYE")


def need_cv2(path: Path, what: str):
    """cv2 for undistortion, or a one-line refusal naming the file and field."""
    try:
        import cv2
    except ImportError:
        raise DataError(f"{what} needs undistortion to a pinhole camera, which needs OpenCV "
                        "(pip install opencv-python-headless), or undistort the images first "
                        "(ScanNet++: python -m dslr.undistort_dslr)", path=path) from None
    return cv2


def undistort(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, coeffs: Sequence[float], fisheye: bool,
              path: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Remap a distorted frame to the pinhole camera with the same K (integer pixel centres).

    Colour is interpolated bilinearly; depth by nearest neighbour (interpolating across a depth
    edge invents surfaces). The depth keeps its values: z of a point does not depend on the lens.
    """
    cv2 = need_cv2(path, what)
    H, W = depth.shape
    Kc = np.asarray(K, dtype=np.float64)
    D = np.asarray(coeffs, dtype=np.float64)
    if fisheye:
        m1, m2 = cv2.fisheye.initUndistortRectifyMap(Kc, D[:4].reshape(4, 1), np.eye(3), Kc, (W, H), cv2.CV_32FC1)
    else:
        m1, m2 = cv2.initUndistortRectifyMap(Kc, D, np.eye(3), Kc, (W, H), cv2.CV_32FC1)
    rgb_u = cv2.remap(rgb, m1, m2, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    dep_u = cv2.remap(depth.astype(np.float32), m1, m2, interpolation=cv2.INTER_NEAREST,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return rgb_u, dep_u


# --------------------------------------------------------------------------- assembly
def make_scene(name: str, frames: list[dict], *, metric: bool, path: Path) -> Any:
    """Frames (dicts of rgb uint8 [H,W,3], depth float32 [H,W], K 3x3, c2w 4x4, id, file) -> Scene.

    Every frame must have the first frame's size (the contract stacks frames); the message names
    the odd frame's file.
    """
    import torch

    from gaspprobe.scenes.types import Scene

    if not frames:
        raise DataError("no frames with both an image and a pose", path=path)
    H, W = frames[0]["rgb"].shape[:2]
    for f in frames[1:]:
        if f["rgb"].shape[:2] != (H, W):
            h, w = f["rgb"].shape[:2]
            raise DataError(f"image size {w}x{h} differs from the first frame's {W}x{H}", path=f.get("file", path))
    return Scene(
        rgb=torch.from_numpy(np.stack([f["rgb"] for f in frames])),
        depth=torch.from_numpy(np.stack([f["depth"] for f in frames]).astype(np.float32)),
        K=torch.from_numpy(np.stack([f["K"] for f in frames]).astype(np.float32)),
        cam_to_world=torch.from_numpy(np.stack([f["c2w"] for f in frames]).astype(np.float32)),
        name=name, frame_ids=[int(f["id"]) for f in frames], metric=metric)


def scene_arrays(scene: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rgb, depth, K float64, c2w float64) as numpy for the test writers."""
    return (scene.rgb.numpy(), scene.depth.numpy(), scene.K.double().numpy(), scene.cam_to_world.double().numpy())


def one_K(scene: Any, fmt: str) -> np.ndarray:
    K = scene.K.double().numpy()
    if not np.allclose(K, K[:1], rtol=0, atol=1e-6):
        raise ValueError(f"{fmt}: this layout stores one camera per scene; the frames' K differ")
    return K[0]
