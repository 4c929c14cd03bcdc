"""A vectorized torch ray caster for procedural rooms: RGB, exact z-depth and instance ids.

The world is a room (the interior of the box [0, Lx] x [0, Ly] x [0, Lz], z up) holding
primitives: yaw-rotated boxes, vertical cylinders and spheres (:class:`World`). Rays go through
pixel centres (integer pixel-centre convention, so ``K`` from the scene is used as is); ray
directions are ``R K^-1 [u, v, 1]`` with camera z = 1, so the ray parameter of a hit *is* its
z-depth.

Speed (the scene generator renders every frame here): each primitive is only tested against
the rays inside the screen rectangle its bounding box projects to (a Python loop over objects,
never over pixels), and shading/texture is computed once per pixel on the final hit.

Appearance is view-independent, so ground-truth correspondences are photometrically consistent:
albedo is a sum of 3D sinusoids anchored to object-local (room: world) coordinates, with random
per-surface phases and two colours mixed by a second noise channel. Sinusoids are band-limited by
construction; each is faded out where it would alias (its frequency exceeds a quarter of the
pixel sampling rate at the hit, from the pixel footprint), which is what keeps fine texture
stable from view to view. Shading is Lambertian from two fixed directional lights plus ambient
(no specular, no shadows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

BOX, CYLINDER, SPHERE = 0, 1, 2
# room surfaces get ids O + face, face = 2 * axis + (1 if the wall is at the far end of the axis)
ROOM_FACES = ("wall_x0", "wall_x1", "wall_y0", "wall_y1", "floor", "ceiling")


@dataclass
class World:
    """Everything the caster needs. O objects, S = O + 6 surfaces, Kt texture sinusoids.

    room: float [3] (Lx, Ly, Lz) metres. kind: long [O] (BOX, CYLINDER, SPHERE).
    center: float [O, 3]. half: float [O, 3] half extents (cylinder: r, r, h/2; sphere: r, r, r).
    yaw: float [O] radians about +z. color_a/color_b: float [S, 3] in [0, 1].
    offset: float [S, 3] per-surface texture offsets in metres (random, several metres, so every surface
    sees different phases of the same sinusoids). freq: float [3, Kt] (radians per metre; column k
    is the wave vector of sinusoid k). amp: float [Kt, 2] (two noise channels: brightness, colour
    mix). light: float [2, 3] unit directions towards lights.
    """

    room: torch.Tensor
    kind: torch.Tensor
    center: torch.Tensor
    half: torch.Tensor
    yaw: torch.Tensor
    color_a: torch.Tensor
    color_b: torch.Tensor
    offset: torch.Tensor
    freq: torch.Tensor
    amp: torch.Tensor
    light: torch.Tensor

    @property
    def n_objects(self) -> int:
        return int(self.kind.shape[0])


def _rot_z(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, s: torch.Tensor):
    """Rotate (x, y) by the angle whose cos/sin are (c, s)."""
    return c * x - s * y, s * x + c * y


def _object_rects(world: World, K: torch.Tensor, c2w: torch.Tensor, H: int, W: int) -> list[tuple[int, int, int, int] | None]:
    """Screen rectangle (u0, v0, u1, v1), half-open, of each object's bounding box; None if unseen."""
    O = world.n_objects
    if O == 0:
        return []
    sgn = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=torch.float32)
    loc = sgn[None] * world.half[:, None, :]  # [O,8,3]
    c, s = torch.cos(world.yaw)[:, None], torch.sin(world.yaw)[:, None]
    wx, wy = _rot_z(loc[..., 0], loc[..., 1], c, s)
    pts = torch.stack([wx, wy, loc[..., 2]], -1) + world.center[:, None, :]
    R = c2w[:3, :3]
    t = c2w[:3, 3]
    pc = (pts - t) @ R  # world -> camera: R^T (p - t)
    z = pc[..., 2]
    out: list[tuple[int, int, int, int] | None] = []
    near = 1e-3
    for o in range(O):
        zo = z[o]
        if bool((zo <= near).all()):
            out.append(None)
            continue
        if bool((zo <= near).any()):
            out.append((0, 0, W, H))  # straddles the camera plane: test every ray
            continue
        uv = (pc[o] @ K.T)
        u = uv[:, 0] / uv[:, 2]
        v = uv[:, 1] / uv[:, 2]
        u0 = max(int(math.floor(float(u.min()))) - 1, 0)
        v0 = max(int(math.floor(float(v.min()))) - 1, 0)
        u1 = min(int(math.ceil(float(u.max()))) + 2, W)
        v1 = min(int(math.ceil(float(v.max()))) + 2, H)
        out.append((u0, v0, u1, v1) if u0 < u1 and v0 < v1 else None)
    return out


def _hit_t(kind: int, o: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, dz: torch.Tensor,
           half: torch.Tensor) -> torch.Tensor:
    """Ray parameter of the first hit (inf if none) for rays o + t d in the primitive's local frame.

    o: [3] local origin; dx, dy, dz: [N] local direction components; half: [3]. The camera is
    outside every primitive (the generator guarantees it), so the entry point is the visible hit.
    """
    inf = torch.tensor(float("inf"))
    ox, oy, oz = float(o[0]), float(o[1]), float(o[2])
    hx, hy, hz = float(half[0]), float(half[1]), float(half[2])
    if kind == BOX:
        with torch.no_grad():
            ix, iy, iz = 1.0 / dx, 1.0 / dy, 1.0 / dz
            ax, bx = (-hx - ox) * ix, (hx - ox) * ix
            ay, by = (-hy - oy) * iy, (hy - oy) * iy
            az, bz = (-hz - oz) * iz, (hz - oz) * iz
            tn = torch.maximum(torch.maximum(torch.minimum(ax, bx), torch.minimum(ay, by)), torch.minimum(az, bz))
            tf = torch.minimum(torch.minimum(torch.maximum(ax, bx), torch.maximum(ay, by)), torch.maximum(az, bz))
            ok = (tn <= tf) & (tn > 0)
            return torch.where(ok, tn, inf)
    if kind == CYLINDER:
        r = hx
        a = dx * dx + dy * dy
        b = 2 * (ox * dx + oy * dy)
        c = ox * ox + oy * oy - r * r
        disc = b * b - 4 * a * c
        ts = (-b - torch.sqrt(disc.clamp(min=0))) / (2 * a)
        zs = oz + ts * dz
        side = torch.where((disc >= 0) & (ts > 0) & (zs.abs() <= hz), ts, inf)
        # caps: the one facing the camera (camera above the top looks at the top cap)
        zc = hz if oz > 0 else -hz
        tc = (zc - oz) / dz
        xc, yc = ox + tc * dx, oy + tc * dy
        cap = torch.where((tc > 0) & (xc * xc + yc * yc <= r * r), tc, inf)
        return torch.minimum(side, cap)
    # sphere
    r = hx
    a = dx * dx + dy * dy + dz * dz
    b = 2 * (ox * dx + oy * dy + oz * dz)
    c = ox * ox + oy * oy + oz * oz - r * r
    disc = b * b - 4 * a * c
    t = (-b - torch.sqrt(disc.clamp(min=0))) / (2 * a)
    return torch.where((disc >= 0) & (t > 0), t, inf)


def render(world: World, K: torch.Tensor, cam_to_world: torch.Tensor, size: tuple[int, int]
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render frames.

    Args:
        world: the :class:`World`.
        K: float [F, 3, 3] intrinsics (integer pixel centres).
        cam_to_world: float [F, 4, 4] OpenCV camera-to-world poses; cameras inside the room and
            outside every object.
        size: (H, W).
    Returns:
        (rgb uint8 [F, H, W, 3], depth float32 [F, H, W] z-depth metres, instance int16 [F, H, W]
        object index or -1 for room surfaces).
    """
    F = K.shape[0]
    H, W = size
    rgbs, depths, insts = [], [], []
    for f in range(F):
        rgb, depth, inst = _render_one(world, K[f].float(), cam_to_world[f].float(), H, W)
        rgbs.append(rgb)
        depths.append(depth)
        insts.append(inst)
    return torch.stack(rgbs), torch.stack(depths), torch.stack(insts)


def _render_one(world: World, K: torch.Tensor, c2w: torch.Tensor, H: int, W: int):
    O = world.n_objects
    R = c2w[:3, :3]
    org = c2w[:3, 3]
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    skew = float(K[0, 1])
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    yc = (v - cy) / fy
    xc = (u - cx - skew * yc) / fx
    # world directions with camera z component 1: d = R [xc, yc, 1]; kept as three contiguous
    # [H, W] planes (structure of arrays: elementwise ops over a trailing axis of 3 are slow)
    Rl = R.tolist()
    dirs = [xc * Rl[a][0] + yc * Rl[a][1] + Rl[a][2] for a in range(3)]

    # room interior: exit distance along each axis, nearest axis wins
    L = world.room.tolist()
    o3 = org.tolist()
    tax = []
    for a in range(3):
        da = dirs[a]
        far = torch.where(da > 0, (L[a] - o3[a]) / da, (0.0 - o3[a]) / da)
        tax.append(torch.where(da == 0, torch.full_like(da, float("inf")), far))
    t, axis = torch.stack(tax, 0).min(0)
    far_side = torch.gather(torch.stack(dirs, 0), 0, axis[None])[0] > 0
    sid = (O + 2 * axis + far_side.long())  # room surface ids
    # objects, each only over its screen rectangle
    rects = _object_rects(world, K, c2w, H, W)
    yaws = world.yaw.tolist()
    for o in range(O):
        rc = rects[o]
        if rc is None:
            continue
        u0, v0, u1, v1 = rc
        dx, dy, dz = (dirs[a][v0:v1, u0:u1].reshape(-1) for a in range(3))
        cy_, sy_ = math.cos(yaws[o]), math.sin(yaws[o])
        # local frame: rotate by -yaw about z after moving the origin to the centre
        rel = org - world.center[o]
        ol = torch.stack([cy_ * rel[0] + sy_ * rel[1], -sy_ * rel[0] + cy_ * rel[1], rel[2]])
        dxl = cy_ * dx + sy_ * dy
        dyl = -sy_ * dx + cy_ * dy
        th = _hit_t(int(world.kind[o]), ol, dxl, dyl, dz, world.half[o]).reshape(v1 - v0, u1 - u0)
        tsub = t[v0:v1, u0:u1]
        closer = th < tsub
        t[v0:v1, u0:u1] = torch.where(closer, th, tsub)
        sid[v0:v1, u0:u1] = torch.where(closer, torch.full_like(th, o, dtype=torch.long), sid[v0:v1, u0:u1])

    rgb = _shade(world, org, [d.reshape(-1) for d in dirs], t, sid, fx)
    inst = torch.where(sid < O, sid, torch.full_like(sid, -1)).to(torch.int16)
    return rgb, t.contiguous(), inst


def _shade(world: World, org: torch.Tensor, d: list[torch.Tensor], t: torch.Tensor, sid: torch.Tensor,
           fx: float) -> torch.Tensor:
    """Texture + Lambert shading for every pixel's final hit -> uint8 [H, W, 3].

    d: the three world ray-direction components, each [P] (P = H*W). Vectors are kept as
    structure-of-arrays ([P] per component): every op runs along one contiguous axis."""
    H, W = t.shape
    O = world.n_objects
    S = O + 6
    tt = t.reshape(-1)
    s = sid.reshape(-1)
    o3 = org.tolist()
    p = [d[a] * tt + o3[a] for a in range(3)]       # world hit points
    # per-surface table, gathered once: room normal (objects: filled below), texture offset, colours
    tab = torch.zeros(12, S)
    for f in range(6):
        tab[f // 2, O + f] = -1.0 if f % 2 else 1.0  # room normals point into the room
    tab[3:6] = world.offset.T
    tab[6:9] = world.color_a.T
    tab[9:12] = world.color_b.T
    g = torch.index_select(tab, 1, s)               # [12,P]
    n = [g[0].clone(), g[1].clone(), g[2].clone()]
    tex = [p[a].clone() for a in range(3)]           # room: texture anchored to world coordinates
    # objects: local coordinates and normals, computed only on each object's own pixels
    # (a loop over objects, each step batched over that object's pixels)
    yaws = world.yaw.tolist()
    for o in range(O):
        idx = torch.nonzero(s == o).squeeze(1)
        if idx.numel() == 0:
            continue
        c, si = math.cos(yaws[o]), math.sin(yaws[o])
        cx_, cy_, cz_ = world.center[o].tolist()
        hx, hy, hz = world.half[o].tolist()
        rx, ry, rz = p[0][idx] - cx_, p[1][idx] - cy_, p[2][idx] - cz_
        lx, ly = c * rx + si * ry, -si * rx + c * ry
        qx, qy, qz = lx / hx, ly / hy, rz / hz
        kind = int(world.kind[o])
        zero = torch.zeros_like(qx)
        if kind == BOX:  # the face whose slab the point is on
            a = torch.stack([qx.abs(), qy.abs(), qz.abs()], 0).argmax(0)
            nx = torch.where(a == 0, torch.sign(qx), zero)
            ny = torch.where(a == 1, torch.sign(qy), zero)
            nz = torch.where(a == 2, torch.sign(qz), zero)
        elif kind == CYLINDER:  # side (radial) or cap (+-z)
            cap = qz.abs() >= 1 - 1e-3
            nx = torch.where(cap, zero, qx)
            ny = torch.where(cap, zero, qy)
            nz = torch.where(cap, torch.sign(qz), zero)
        else:  # sphere: radial
            nx, ny, nz = qx, qy, qz
        wx, wy = c * nx - si * ny, si * nx + c * ny  # back to world: rotate by +yaw
        inv = torch.rsqrt((wx * wx + wy * wy + nz * nz).clamp(min=1e-18))
        n[0][idx], n[1][idx], n[2][idx] = wx * inv, wy * inv, nz * inv
        tex[0][idx], tex[1][idx], tex[2][idx] = lx, ly, rz

    # texture: sum of 3D sinusoids anchored to the surface, faded where they would alias.
    # Laid out [Kt, P] so every elementwise op runs along the contiguous pixel axis.
    fr = world.freq                                # [3,Kt] rad/m, sinusoids sorted coarse -> fine
    q = torch.stack([tex[a] + g[3 + a] for a in range(3)], 0)  # [3,P]
    cyc = fr.norm(dim=0) / (2 * math.pi)           # cycles per metre [Kt]
    dn = torch.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    cos_inc = ((d[0] * n[0] + d[1] * n[1] + d[2] * n[2]).abs() / dn).clamp(min=0.25)
    foot = tt * dn / (fx * cos_inc)                # metres per pixel on the surface (approx.)
    # fade from full amplitude at 4 px per cycle to zero at 2 px per cycle (Nyquist); sinusoids
    # that are zero at every pixel are skipped, those that are 1 everywhere are not multiplied
    fmin, fmax = float(foot.min()), float(foot.max())
    k_used = int((cyc * fmin < 0.5).sum())
    k_full = int((cyc * fmax <= 0.25).sum())
    wave = torch.sin(fr.T.contiguous()[:k_used] @ q)  # [k_used,P] (a transposed operand is ~4x slower)
    if k_used > k_full:
        att = torch.outer(cyc[k_full:k_used] * -4.0, foot).add_(2.0).clamp_(0, 1)
        wave[k_full:k_used].mul_(att)
    noise = world.amp[:k_used].T.contiguous() @ wave  # [2,P]
    bright = noise[0].clamp(-1.5, 1.5).mul_(0.25 / 1.5).add_(0.75)
    mix = torch.sigmoid(2.5 * noise[1])
    l0, l1 = world.light[0].tolist(), world.light[1].tolist()
    sh0 = (n[0] * l0[0] + n[1] * l0[1] + n[2] * l0[2]).clamp_(min=0)
    sh1 = (n[0] * l1[0] + n[1] * l1[1] + n[2] * l1[2]).clamp_(min=0)
    k = (sh0.mul_(0.45).add_(sh1.mul_(0.25)).add_(0.45)).mul_(bright).mul_(255.0)
    out = torch.empty(H * W, 3, dtype=torch.uint8)
    for a in range(3):
        ca, cb = g[6 + a], g[9 + a]
        albedo = torch.addcmul(ca, cb - ca, mix)
        out[:, a] = albedo.mul_(k).clamp_(0, 255).add_(0.5).to(torch.uint8)
    return out.reshape(H, W, 3)
