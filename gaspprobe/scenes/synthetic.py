"""Procedural scenes: seeded rooms, furniture, textures and camera paths, rendered exactly.

Start with :func:`generate_scene` (one scene in memory) or :func:`make_scenes` (a folder of
scenes in the ScanNet layout; the CLI's ``gaspprobe scenes make``). Defaults: 8 scenes x 16
frames at 448 x 448.

A scene is a room of 3-10 m per side (2.5-3.2 m high) with 4-12 objects drawn from
:data:`VOCAB` (typical sizes per class, +-15 %), each with a named colour from :data:`COLORS`.
Objects stand on the floor (TVs hang on a wall) without overlapping. The camera moves along an
arc of an ellipse inside the room (``motion``: the fraction of a full loop covered over the
sequence), looks towards the room's centre with a slowly oscillating yaw (``turn`` degrees)
and a slight downward pitch, and never comes within ``clearance`` metres of an object.

Same seed, same bytes: all randomness comes from ``numpy.random.default_rng(seed)`` and
rendering is deterministic torch arithmetic.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from gaspprobe.scenes.geometry import look_at
from gaspprobe.scenes.render import BOX, CYLINDER, SPHERE, World, render
from gaspprobe.scenes.types import Object3D, Scene

# class -> (shape, (size x, size y, size z) metres, on-wall?)  Sizes are typical full extents.
VOCAB: dict[str, tuple[int, tuple[float, float, float], bool]] = {
    "chair": (BOX, (0.50, 0.50, 0.90), False),
    "table": (BOX, (1.20, 0.80, 0.75), False),
    "desk": (BOX, (1.40, 0.70, 0.75), True),
    "sofa": (BOX, (2.00, 0.90, 0.85), True),
    "bed": (BOX, (2.00, 1.60, 0.55), True),
    "cabinet": (BOX, (0.80, 0.45, 1.80), True),
    "bookshelf": (BOX, (1.00, 0.35, 1.90), True),
    "refrigerator": (BOX, (0.70, 0.70, 1.80), True),
    "tv": (BOX, (1.10, 0.10, 0.65), True),
    "ottoman": (CYLINDER, (0.60, 0.60, 0.45), False),
    "stool": (CYLINDER, (0.40, 0.40, 0.65), False),
    "trash can": (CYLINDER, (0.35, 0.35, 0.60), False),
    "lamp": (CYLINDER, (0.35, 0.35, 1.60), False),
    "plant": (CYLINDER, (0.50, 0.50, 1.00), False),
    "ball": (SPHERE, (0.40, 0.40, 0.40), False),
}

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.15, 0.15), "green": (0.20, 0.60, 0.25), "blue": (0.20, 0.35, 0.80),
    "yellow": (0.90, 0.80, 0.20), "orange": (0.95, 0.55, 0.15), "purple": (0.55, 0.25, 0.65),
    "pink": (0.95, 0.55, 0.70), "brown": (0.50, 0.32, 0.18), "black": (0.12, 0.12, 0.12),
    "white": (0.92, 0.92, 0.90), "gray": (0.55, 0.55, 0.55), "beige": (0.85, 0.78, 0.62),
    "teal": (0.15, 0.55, 0.55), "navy": (0.12, 0.18, 0.45),
}
WALL_COLORS = ("white", "beige", "gray", "pink", "teal", "yellow")
FLOOR_COLORS = ("brown", "gray", "beige")  # no black floors: texture contrast scales with albedo

N_TEX = 24  # texture sinusoids

# The "video" camera (generate_scene(camera="video")): hand-held indoor video at 30 fps. A person
# scanning a room walks at ~0.2-0.4 m/s and turns ~5-30 deg/s (TUM RGB-D hand-held sequences, see
# docs/probe.md); 0.25 m/s and an 8-degree yaw sway over 4 s give a median of ~8 mm and ~0.4 deg
# per frame at 30 fps (measured by path_motion; tests/test_scenes.py checks it).
VIDEO_FPS = 30.0
VIDEO_SPEED = 0.25
VIDEO_SWAY = 8.0
VIDEO_SWAY_PERIOD = 4.0


def _texture(rng: np.random.Generator, n_surfaces: int) -> tuple[torch.Tensor, ...]:
    """Wave vectors [3,N_TEX] (rad/m; wavelengths 1.2 m .. 3 cm, log-spaced, random directions),
    amplitudes [N_TEX,2] (finer waves slightly weaker), per-surface offsets [S,3] (metres)."""
    lam = np.exp(np.linspace(math.log(1.2), math.log(0.03), N_TEX))
    dirs = rng.normal(size=(N_TEX, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    freq = dirs * (2 * math.pi / lam)[:, None]
    amp = rng.normal(size=(N_TEX, 2)) * (lam / lam.max())[:, None] ** 0.35
    amp /= np.sqrt((amp ** 2).sum(0, keepdims=True) / 2)
    # +-5 m shifts every wave by many periods (distinct phases per surface) while keeping sin()
    # arguments below ~3e3 rad: larger arguments take a slower range reduction (3x the time)
    offset = rng.uniform(-5.0, 5.0, size=(n_surfaces, 3))
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return t(freq.T.copy()), t(amp), t(offset)


def _accent(rng: np.random.Generator, base: tuple[float, float, float]) -> np.ndarray:
    """A second colour for the texture: the base shifted darker or lighter with a slight tint."""
    b = np.asarray(base)
    k = rng.choice([0.45, 0.6, 1.35, 1.6])
    tint = rng.uniform(-0.08, 0.08, size=3)
    return np.clip(b * k + tint + (0.1 if k > 1 else 0.0), 0.02, 1.0)


def _camera_path(rng, room, frames, motion, turn_deg, margin, height, video=None):
    """Eye and target points [F,3] and dense samples of the path (clearance test).

    ``video`` = None: the arc covers ``motion`` of a loop over the sequence whatever its length,
    and the yaw sways by ``turn_deg`` with 0.6 periods per sequence. ``video`` = (fps, speed m/s,
    sway deg, sway period s): the camera walks at ``speed`` along the same kind of arc, frame k at
    time k / fps, its yaw swaying by ``sway`` degrees with that period (a person scanning a room),
    so per-frame motion is set in metres and degrees per second, independent of the frame count.
    The random draws are the same in both cases (same rooms and objects for a seed)."""
    Lx, Ly, Lz = room
    ax = max(Lx / 2 - margin, 0.25)
    ay = max(Ly / 2 - margin, 0.25)
    th0 = rng.uniform(0, 2 * math.pi)
    direction = 1 if rng.uniform() < 0.5 else -1
    h0 = rng.uniform(*height)
    ph_h, ph_yaw = rng.uniform(0, 6.3), rng.uniform(0, 6.3)
    pitch = math.radians(rng.uniform(-20, -8))
    if video is None:
        span = motion * 2 * math.pi * direction
        s = np.linspace(0, 1, frames)
        sway_t = 0.6 * s
        turn = turn_deg
        bob = 0.08 * np.sin(2 * math.pi * s + ph_h)
    else:
        fps, speed, turn, period = video
        t = np.arange(frames) / fps
        perimeter = 2 * math.pi * math.sqrt((ax * ax + ay * ay) / 2)  # ellipse, close enough for a pace
        duration = max(t[-1], 1e-9)
        span = direction * 2 * math.pi * speed * duration / perimeter
        s = t / duration if frames > 1 else np.zeros(1)
        sway_t = t / period
        bob = 0.01 * np.sin(2 * math.pi * t / 1.1 + ph_h)  # a step's small vertical bob (~1.1 s)
    th = th0 + span * s
    eye = np.stack([Lx / 2 + ax * np.cos(th), Ly / 2 + ay * np.sin(th), h0 + bob], -1)
    centre = np.array([Lx / 2, Ly / 2])
    fwd = centre[None] - eye[:, :2]
    base_yaw = np.arctan2(fwd[:, 1], fwd[:, 0])
    yaw = base_yaw + math.radians(turn) * np.sin(2 * math.pi * sway_t + ph_yaw)
    look = np.stack([np.cos(yaw) * math.cos(pitch), np.sin(yaw) * math.cos(pitch),
                     np.full(frames, math.sin(pitch))], -1)
    # dense samples of the whole path, for the clearance test
    sd = np.linspace(0, 1, 64)
    thd = th0 + span * sd
    dense = np.stack([Lx / 2 + ax * np.cos(thd), Ly / 2 + ay * np.sin(thd)], -1)
    return eye, eye + look, dense


def path_motion(cam_to_world: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame camera motion of a trajectory: translation (metres) and rotation (degrees)
    between consecutive frames, each float64 [F-1]. Works on any scene (``scene.cam_to_world``,
    e.g. a real ScanNet export) so synthetic paths can be compared with real video."""
    T = cam_to_world.double()
    dt = (T[1:, :3, 3] - T[:-1, :3, 3]).norm(dim=-1)
    R = T[:-1, :3, :3].transpose(-1, -2) @ T[1:, :3, :3]
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return dt, torch.rad2deg(torch.arccos(cos))


def generate_scene(seed: int, frames: int = 16, size: int | tuple[int, int] = 448, name: str | None = None, *,
                   n_objects: tuple[int, int] = (4, 12), room_size: tuple[tuple[float, float], ...] = ((3.0, 10.0), (3.0, 10.0), (2.5, 3.2)),
                   motion: float = 0.25, turn: float = 25.0, fov: float = 65.0,
                   clearance: float = 0.45, camera_margin: float = 0.8,
                   camera_height: tuple[float, float] = (1.2, 1.7), camera: str = "arc",
                   fps: float = VIDEO_FPS, speed: float = VIDEO_SPEED, sway: float = VIDEO_SWAY,
                   sway_period: float = VIDEO_SWAY_PERIOD) -> Scene:
    """Generate and render one procedural scene in memory (no disk).

    Args:
        seed: all randomness derives from it; the same seed gives the same bytes.
        frames: number of frames F (default 16).
        size: S (square S x S) or (H, W); default 448.
        name: scene name (default ``synth_<seed>``).
        n_objects: inclusive range of objects to place (default 4..12; a small room may fit fewer).
        room_size: ranges of the room's x, y, z extents in metres.
        motion: fraction of a full loop around the room covered by the camera (default 0.25).
        turn: amplitude in degrees of the camera's yaw oscillation around "look at the centre".
        fov: horizontal field of view in degrees.
        clearance: minimum distance in metres from the camera path to any object's footprint.
        camera_margin: the path's distance from the walls in metres.
        camera_height: range of camera heights in metres.
        camera: ``"arc"`` (default: ``motion`` of a loop over the sequence, whatever its length)
            or ``"video"`` (motion like hand-held indoor video: frame k at time k / ``fps``, walking
            at ``speed`` m/s with the yaw swaying ``sway`` degrees over ``sway_period`` seconds;
            ``motion`` and ``turn`` are then unused). See docs/probe.md for the figures.
        fps, speed, sway, sway_period: the video camera (defaults 30 fps, 0.25 m/s, 8 deg, 4 s).
    Returns:
        :class:`Scene` with ``objects`` (class, colour, centre, size, yaw), ``room``
        (``size``, ``floor_area``, ``wall_color``, ``floor_color``) and ``instance``.
    """
    H, W = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if frames < 1 or H < 2 or W < 2:
        raise ValueError(f"frames and size must be positive (got frames={frames}, size={(H, W)})")
    rng = np.random.default_rng(seed)
    room = tuple(float(rng.uniform(lo, hi)) for lo, hi in room_size)
    Lx, Ly, Lz = room
    if camera not in ("arc", "video"):
        raise ValueError(f"camera: expected 'arc' or 'video', got {camera!r}")
    if camera == "video" and not (fps > 0 and speed >= 0 and sway_period > 0):
        raise ValueError(f"video camera: fps and sway_period must be > 0 and speed >= 0 "
                         f"(got fps={fps}, speed={speed}, sway_period={sway_period})")
    video = (float(fps), float(speed), float(sway), float(sway_period)) if camera == "video" else None
    eye, target, dense = _camera_path(rng, room, frames, motion, turn, camera_margin, camera_height, video)

    classes = list(VOCAB)
    n_want = int(rng.integers(n_objects[0], n_objects[1] + 1))
    placed: list[tuple[str, int, np.ndarray, np.ndarray, float, float]] = []  # cls, kind, c, size, yaw, radius
    tries = 0
    while len(placed) < n_want and tries < 60 * n_want:
        tries += 1
        cls = classes[int(rng.integers(len(classes)))]
        kind, base, walled = VOCAB[cls]
        sz = np.asarray(base) * rng.uniform(0.85, 1.15, size=3)
        if kind != BOX:
            sz[1] = sz[0]
            if kind == SPHERE:
                sz[:] = sz[0]
        against_wall = walled and rng.uniform() < 0.7
        if against_wall:
            wall = int(rng.integers(4))
            yaw = [0.5 * math.pi, 1.5 * math.pi, math.pi, 0.0][wall] + rng.uniform(-0.03, 0.03)
            along = rng.uniform(0.1, 0.9)
            off = sz[1] / 2 + 0.02
            xy = [(off, along * Ly), (Lx - off, along * Ly), (along * Lx, off), (along * Lx, Ly - off)][wall]
            c = np.array([xy[0], xy[1], 0.0])
        else:
            yaw = rng.uniform(0, 2 * math.pi) if rng.uniform() < 0.5 else int(rng.integers(4)) * math.pi / 2
            c = np.array([rng.uniform(0, Lx), rng.uniform(0, Ly), 0.0])
        c[2] = sz[2] / 2 if cls != "tv" else rng.uniform(1.0, 1.5)
        # footprint radius (half diagonal) and containment in the room
        ccos, csin = abs(math.cos(yaw)), abs(math.sin(yaw))
        ex = (ccos * sz[0] + csin * sz[1]) / 2
        ey = (csin * sz[0] + ccos * sz[1]) / 2
        if not (ex <= c[0] <= Lx - ex and ey <= c[1] <= Ly - ey and c[2] + sz[2] / 2 < Lz - 0.05):
            continue
        rad = 0.5 * math.hypot(sz[0], sz[1])
        if np.min(np.linalg.norm(dense - c[None, :2], axis=1)) < rad + clearance:
            continue
        if any(np.linalg.norm(c[:2] - q[2][:2]) < rad + q[5] + 0.05 for q in placed):
            continue
        placed.append((cls, kind, c, sz, float(yaw % (2 * math.pi)), rad))

    cols = list(COLORS)
    objects: list[Object3D] = []
    ca, cb = [], []
    for k, (cls, kind, c, sz, yaw, _) in enumerate(placed):
        cname = cols[int(rng.integers(len(cols)))]
        objects.append(Object3D(cls=cls, color=cname, center=tuple(float(x) for x in c),
                                size=tuple(float(x) for x in sz), yaw=yaw, id=k))
        ca.append(COLORS[cname])
        cb.append(_accent(rng, COLORS[cname]))
    wall_c = WALL_COLORS[int(rng.integers(len(WALL_COLORS)))]
    floor_c = FLOOR_COLORS[int(rng.integers(len(FLOOR_COLORS)))]
    for face in range(6):  # wall_x0, wall_x1, wall_y0, wall_y1, floor, ceiling
        cname = floor_c if face == 4 else ("white" if face == 5 else wall_c)
        base = np.asarray(COLORS[cname])
        ca.append(tuple(np.clip(base * rng.uniform(0.9, 1.05), 0, 1)))
        cb.append(_accent(rng, COLORS[cname]))
    freq, amp, offset = _texture(rng, len(placed) + 6)
    light = np.array([[0.35, 0.25, 0.90], [-0.6, -0.7, 0.3]])
    light /= np.linalg.norm(light, axis=1, keepdims=True)
    f32 = lambda a: torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float32)  # noqa: E731
    world = World(
        room=f32(room),
        kind=torch.tensor([p[1] for p in placed], dtype=torch.long),
        center=f32(np.array([p[2] for p in placed]).reshape(-1, 3)),
        half=f32(np.array([p[3] for p in placed]).reshape(-1, 3) / 2),
        yaw=f32([p[4] for p in placed]),
        color_a=f32(ca), color_b=f32(cb), offset=offset, freq=freq, amp=amp, light=f32(light))

    fx = (W / 2) / math.tan(math.radians(fov) / 2)
    K = torch.tensor([[fx, 0.0, (W - 1) / 2], [0.0, fx, (H - 1) / 2], [0.0, 0.0, 1.0]], dtype=torch.float32)
    Ks = K[None].expand(frames, 3, 3).clone()
    c2w = look_at(torch.tensor(eye, dtype=torch.float64), torch.tensor(target, dtype=torch.float64)).float()
    rgb, depth, inst = render(world, Ks, c2w, (H, W))
    return Scene(rgb=rgb, depth=depth, K=Ks, cam_to_world=c2w, objects=objects,
                 name=name or f"synth_{seed}", frame_ids=list(range(frames)),
                 room={"size": [Lx, Ly, Lz], "floor_area": Lx * Ly, "wall_color": wall_c, "floor_color": floor_c},
                 instance=inst)


def scene_seed(seed: int, index: int) -> int:
    """The seed of scene ``index`` of a ``make_scenes(seed=seed)`` set (independent streams)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def make_scenes(out: str | Path, n_scenes: int = 8, frames: int = 16, size: int = 448, seed: int = 0, *,
                progress: Callable[[int, int], Any] | None = None, **knobs: Any) -> list[Path]:
    """Generate ``n_scenes`` scenes into ``out/<name>/`` (ScanNet layout) plus ``out/manifest.json``.

    The folder is a ``scenes`` run of the run kernel (:func:`gaspprobe.runs.open_run`,
    incremental, ``on_change="replace"``): each scene is written atomically under a ``running``
    manifest, which is flipped to ``complete`` last. A rerun with the same arguments returns at
    once; an interrupted run resumes (finished scenes are kept); a different config replaces the
    folder's stale scenes; a folder that is not a scenes run is refused with one line.

    Args:
        out: output folder.
        n_scenes, frames, size, seed: defaults 8, 16, 448, 0.
        progress: optional callback ``progress(done, total)`` after each scene.
        **knobs: passed to :func:`generate_scene` (``n_objects``, ``motion``, ``turn``, ... and
            ``camera="video"`` with ``fps`` / ``speed`` / ``sway`` for video-like motion).
    Returns:
        The scene folders, in order.
    """
    from gaspprobe.runs import open_run
    from gaspprobe.scenes.scannet import save_scene

    out = Path(out)
    cfg = {"n_scenes": int(n_scenes), "frames": int(frames), "size": int(size), "seed": int(seed),
           **{k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(knobs.items())}}
    names = [f"scene{k:04d}_00" for k in range(n_scenes)]
    paths = [out / n for n in names]
    with open_run(out, "scenes", cfg, publish="incremental", seed=seed, on_change="replace") as run:
        if run.cached:
            return paths
        resume = run.resumed  # an interrupted run of this config: keep its finished scenes
        run.start(scenes=names)
        for k, (nm, p) in enumerate(zip(names, paths)):
            if not (resume and (p / "intrinsic" / "intrinsic_color.txt").exists()):
                sc = generate_scene(scene_seed(seed, k), frames=frames, size=size, name=nm, **knobs)
                save_scene(sc, p, overwrite=p.exists())
            if progress is not None:
                progress(k + 1, n_scenes)
        run.complete(scenes=names)
    return paths
