"""The scene contract: frames with exact depth and camera poses, plus object annotations.

Conventions (stated once, used everywhere):
- Camera axes are OpenCV: x right, y down, z forward. ``cam_to_world`` maps camera to world.
- The world is z-up (as ScanNet), metres.
- ``K`` uses integer pixel centres: pixel (u, v) has its centre at (u, v), so for a W-wide image
  the optical centre of a symmetric camera is cx = (W - 1) / 2 (ScanNet: 319.5 for 640).
- ``depth`` is z-depth (planar, along the camera z axis) in metres; 0 means invalid.
- Token boxes (``TokenGrid.boxes``) use *edge* coordinates: the image spans [0, W] x [0, H] and
  pixel u covers [u, u + 1). A box centre (x, y) in edge coordinates is the pixel-centre point
  (x - 0.5, y - 0.5) for ``K``. Mixing the two is the half-pixel pitfall.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Object3D:
    """One annotated object: an oriented box standing on the floor or anywhere in the room.

    ``size`` is the full extent (x, y, z) in the object's own frame, which is the world frame
    rotated by ``yaw`` (radians, about world +z); ``center`` is the box centre in world metres.
    """

    cls: str
    color: str
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float = 0.0
    id: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "class": self.cls, "color": self.color, "center": list(self.center),
                "size": list(self.size), "yaw": self.yaw}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Object3D":
        return cls(cls=str(d["class"]), color=str(d.get("color", "")),
                   center=tuple(float(x) for x in d["center"]),  # type: ignore[arg-type]
                   size=tuple(float(x) for x in d["size"]),  # type: ignore[arg-type]
                   yaw=float(d.get("yaw", 0.0)), id=int(d.get("id", 0)))


@dataclass
class Scene:
    """F frames of one scene. Shapes: rgb uint8 [F,H,W,3]; depth float32 [F,H,W] (m, 0 = invalid);
    K float32 [F,3,3]; cam_to_world float32 [F,4,4] (OpenCV camera axes, z-up world).

    ``frame_ids`` are the on-disk frame indices (frames with invalid poses are skipped on load).
    ``room`` holds optional room facts (e.g. ``{"size": [x, y, z], "floor_area": m2}``) and
    ``instance`` an optional int16 [F,H,W] object-id map (-1 = no object), both for synthetic
    scenes whose annotations are exact. ``metric`` is False when depth (and so translation) is known
    only up to an unknown scale (COLMAP/MVS reconstructions, CO3Dv2, DL3DV): correspondences are
    still exact, but anything that reads depth as metres (a metric depth loss, depth error in
    metres, distances in a benchmark) must not use it as such.
    """

    rgb: "torch.Tensor"
    depth: "torch.Tensor"
    K: "torch.Tensor"
    cam_to_world: "torch.Tensor"
    objects: list[Object3D] = field(default_factory=list)
    name: str = "scene"
    frame_ids: list[int] | None = None
    room: dict[str, Any] | None = None
    instance: "torch.Tensor | None" = None
    metric: bool = True

    def __post_init__(self) -> None:
        F = self.rgb.shape[0]
        if self.rgb.ndim != 4 or self.rgb.shape[-1] != 3:
            raise ValueError(f"rgb: expected [F,H,W,3], got {tuple(self.rgb.shape)}")
        H, W = self.rgb.shape[1:3]
        if tuple(self.depth.shape) != (F, H, W):
            raise ValueError(f"depth: expected {(F, H, W)}, got {tuple(self.depth.shape)}")
        if tuple(self.K.shape) != (F, 3, 3):
            raise ValueError(f"K: expected {(F, 3, 3)}, got {tuple(self.K.shape)}")
        if tuple(self.cam_to_world.shape) != (F, 4, 4):
            raise ValueError(f"cam_to_world: expected {(F, 4, 4)}, got {tuple(self.cam_to_world.shape)}")
        if self.frame_ids is None:
            self.frame_ids = list(range(F))

    @property
    def num_frames(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of every frame."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[2])

    def take(self, idx: "list[int]") -> "Scene":
        """Frames ``idx`` as a Scene: :meth:`subset` here; a lazy scene reads only those frames."""
        return self.subset(list(idx))

    def subset(self, idx: "list[int]") -> "Scene":
        """The scene restricted to frames ``idx`` (in that order)."""
        import torch

        i = torch.as_tensor(idx, dtype=torch.long)
        return Scene(rgb=self.rgb[i], depth=self.depth[i], K=self.K[i], cam_to_world=self.cam_to_world[i],
                     objects=list(self.objects), name=self.name,
                     frame_ids=[self.frame_ids[j] for j in idx] if self.frame_ids else None,
                     room=self.room, instance=None if self.instance is None else self.instance[i],
                     metric=self.metric)
