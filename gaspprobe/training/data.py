"""Training data for GASP: clips of scene frames plus their ground-truth patch matches.

:class:`ClipPlan` decides which frames form clip number ``p`` of the run, as a pure function of
``(seed, p)``: epoch ``p // epoch_len`` draws ``clips_per_scene`` clips per scene (an anchor frame
and ``frames_per_clip - 1`` other frames within ``+-clip_window`` of it, sorted in time) from a
generator seeded by ``(seed, epoch)`` and shuffles them. The data position saved in a checkpoint
is therefore one integer (clips consumed), and a resumed run sees exactly the clips an
uninterrupted run would. With several processes, global batch ``k`` is clips
``[k*B*W, (k+1)*B*W)`` and process ``r`` takes every W-th of them starting at ``r``.

:class:`MatchCache` turns a batch of clips into a :class:`~gaspprobe.training.losses.MatchSet`
(every unordered frame pair ``i < j`` of each clip, matches from ``scenes.patch_matches`` on the
model's token boxes, GT depth = ``proj_depth``), caching per (scene, frame pair): clips reuse
pairs across epochs, and the geometry is the same every time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import torch

from gaspprobe.errors import DataError
from gaspprobe.training.losses import MatchSet


@dataclass(frozen=True)
class Clip:
    scene: int            # index into the run's training scene list
    frames: tuple[int, ...]


class ClipPlan:
    """Deterministic clip order: ``clip(p)`` is clip number ``p`` of the run (see module doc)."""

    def __init__(self, frame_counts: Sequence[int], frames_per_clip: int, clip_window: int,
                 clips_per_scene: int, seed: int, *, sources: Sequence[int] | None = None,
                 weights: Sequence[float] | None = None):
        self.frame_counts = [int(n) for n in frame_counts]
        self.k = int(frames_per_clip)
        self.window = int(clip_window)
        self.per_scene = int(clips_per_scene)
        self.seed = int(seed)
        if not self.frame_counts:
            raise DataError("no training scenes")
        if min(self.frame_counts) < self.k:
            raise DataError(f"a training scene has {min(self.frame_counts)} frames, fewer than "
                            f"frames_per_clip={self.k}")
        self.epoch_len = self.per_scene * len(self.frame_counts)
        self.quotas: list[int] | None = None
        if weights is not None:
            src = [int(x) for x in (sources if sources is not None else [0] * len(self.frame_counts))]
            if len(src) != len(self.frame_counts):
                raise ValueError("sources: expected one source index per scene")
            self.members = [[s for s, k in enumerate(src) if k == q] for q in range(len(weights))]
            self.quotas = mix_quotas(self.epoch_len, weights)
            for q, (m, n) in enumerate(zip(self.members, self.quotas)):
                if n and not m:
                    raise DataError(f"scene source {q} has weight > 0 but no training scenes")
        self._cache: dict[int, list[Clip]] = {}

    def _draw(self, g: torch.Generator, s: int) -> Clip:
        """One clip of scene ``s``: an anchor frame and ``k - 1`` others within the window."""
        n, k = self.frame_counts[s], self.k
        a = int(torch.randint(n, (1,), generator=g))
        lo, hi = max(0, a - self.window), min(n - 1, a + self.window)
        if hi - lo + 1 < k:            # near the ends: slide the window to fit k frames
            lo, hi = max(0, min(lo, n - k)), min(n - 1, max(hi, k - 1))
        cand = torch.tensor([f for f in range(lo, hi + 1) if f != a])
        others = cand[torch.randperm(len(cand), generator=g)[: k - 1]]
        return Clip(s, tuple(sorted([a] + others.tolist())))

    def _epoch(self, e: int) -> list[Clip]:
        if e in self._cache:
            return self._cache[e]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + e)
        clips = []
        if self.quotas is None:        # every scene clips_per_scene times
            for s in range(len(self.frame_counts)):
                for _ in range(self.per_scene):
                    clips.append(self._draw(g, s))
        else:                          # quota per source, scenes drawn uniformly within it
            for members, q in zip(self.members, self.quotas):
                for _ in range(q):
                    clips.append(self._draw(g, members[int(torch.randint(len(members), (1,), generator=g))]))
        order = torch.randperm(len(clips), generator=g).tolist()
        out = [clips[i] for i in order]
        self._cache = {e: out}              # keep one epoch: memory stays flat on long runs
        return out

    def clip(self, p: int) -> Clip:
        return self._epoch(p // self.epoch_len)[p % self.epoch_len]

    def batch(self, k: int, batch_size: int, rank: int = 0, world: int = 1) -> list[Clip]:
        """The clips process ``rank`` of ``world`` trains on in global micro-batch ``k``."""
        start = k * batch_size * world
        return [self.clip(start + rank + world * b) for b in range(batch_size)]


def mix_quotas(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` clips over sources in proportion to ``weights`` (largest remainder, ties to
    the earlier source), so an epoch holds exactly ``total`` clips."""
    w = [float(x) for x in weights]
    if not w or min(w) < 0 or sum(w) <= 0:
        raise ValueError(f"weights: expected non-negative weights with a positive sum, got {w}")
    exact = [total * x / sum(w) for x in w]
    out = [int(x) for x in exact]
    rest = sorted(range(len(w)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in rest[: total - sum(out)]:
        out[i] += 1
    return out


def regular_boxes(extent: tuple[float, float, float, float], rows: int, cols: int) -> torch.Tensor:
    """[rows*cols, 4] edge-coordinate boxes tiling ``extent`` = (x0, y0, x1, y1), row-major."""
    x0, y0, x1, y1 = extent
    xs = torch.linspace(x0, x1, cols + 1)
    ys = torch.linspace(y0, y1, rows + 1)
    b = torch.stack(torch.broadcast_tensors(xs[None, :-1], ys[:-1, None], xs[None, 1:], ys[1:, None]), -1)
    return b.reshape(-1, 4).float()


class MatchCache:
    """GT matches and patch depths for clips, on the token grid and optional extra square grids.

    Args:
        scenes: the training scenes (same frame size).
        token_boxes: float [rows*cols, 4] boxes of one frame's tokens (edge coords, row-major),
            from ``adapter.token_grid(frame_size, 1)``; every frame of a clip has the same boxes.
        grid: (rows, cols) of the token grid.
        extra_grids: sizes G of extra GxG grids over the token grid's extent (coarse/fine GT).
        depth_tol: passed to ``patch_matches`` (None = its default).
        max_gap: kept for callers; pairs are computed per clip, only those asked for (:meth:`ensure`).
        max_scenes: GT of at most this many scenes is kept (least recently used dropped).
    """

    def __init__(self, scenes: Sequence, token_boxes: torch.Tensor, grid: tuple[int, int],
                 extra_grids: Sequence[int] = (), depth_tol: float | None = None, max_gap: int = 24,
                 max_scenes: int = 256):
        self.scenes = list(scenes)
        self.depth_tol = depth_tol
        self.max_gap = int(max_gap)
        ext = (float(token_boxes[:, 0].min()), float(token_boxes[:, 1].min()),
               float(token_boxes[:, 2].max()), float(token_boxes[:, 3].max()))
        self.boxes: dict[str, tuple[torch.Tensor, tuple[int, int]]] = {"token": (token_boxes.float(), grid)}
        for G in extra_grids:
            if (G, G) != tuple(grid):
                self.boxes[str(G)] = (regular_boxes(ext, G, G), (G, G))
        self.max_scenes = int(max_scenes)
        #: video input: the clip position of each temporal token slice's anchor frame (its first);
        #: None = images, one grid frame per clip frame
        self.anchors: list[int] | None = None
        # per scene (least recently used first): {"pairs": {(i, j, key): (src, tgt, depth)},
        # "depth": {key: [F, N]}}. Bounded, so memory stays flat however many scenes a run has;
        # evicting loses nothing but time (the geometry is recomputed identically).
        self._scenes: OrderedDict[int, dict] = OrderedDict()

    def _pair(self, s: int, i: int, j: int, key: str):
        """(src, tgt, proj_depth) of frame pair (i, j) of scene s (computed on first use, then cached)."""
        pairs = self._entry(s)["pairs"]
        if (i, j, key) not in pairs:
            self.ensure(s, [(i, j)], key)
        return pairs[(i, j, key)]

    def ensure(self, s: int, wanted: Sequence[tuple[int, int]], key: str = "token", view: "_View | None" = None) -> None:
        """Compute the pairs of scene ``s`` in ``wanted`` that are not cached yet, in ONE batched
        ``patch_matches_many`` call (per-frame work shared; box medians skipped: only matches and
        ``proj_depth`` are used). Only pairs a clip (or a validation) asks for are computed: with
        thousands of scenes most scenes are seen a few times, and pairs nobody asks for are waste.
        The frames are read alone (``Scene.take``: a lazy scene decodes only those); ``view`` passes
        frames read already. Each pair's result depends on its two frames only."""
        pairs = self._entry(s)["pairs"]
        missing = list(dict.fromkeys((int(i), int(j)) for i, j in wanted if (int(i), int(j), key) not in pairs))
        if not missing:
            return
        from gaspprobe.scenes import patch_matches_many

        v = view if view is not None else self.view(s, sorted({f for ij in missing for f in ij}))
        kw = {} if self.depth_tol is None else {"depth_tol": self.depth_tol}
        local = [(v.at[i], v.at[j]) for i, j in missing]
        pms = patch_matches_many(v.scene, local, self.boxes[key][0], patch_depths=False, **kw)
        for (i, j), pm in zip(missing, pms):
            pairs[(i, j, key)] = (pm.src.long(), pm.tgt.long(), pm.proj_depth.float())

    def view(self, s: int, frames: Sequence[int]) -> "_View":
        """Frames ``frames`` of scene ``s``, read once (only those, for a lazy scene)."""
        fr = sorted(set(int(f) for f in frames))
        return _View(self.scenes[s].take(fr), {f: k for k, f in enumerate(fr)})

    def _entry(self, s: int) -> dict:
        """Scene ``s``'s cache entry, marked most recently used; the oldest beyond ``max_scenes`` go."""
        e = self._scenes.get(s)
        if e is None:
            e = self._scenes[s] = {"pairs": {}, "depth": {}}
            while len(self._scenes) > self.max_scenes:
                self._scenes.popitem(last=False)
        else:
            self._scenes.move_to_end(s)
        return e

    def _token_depth(self, s: int, key: str, frames: Sequence[int], view: "_View | None" = None) -> torch.Tensor:
        """[len(frames), N] patch depth of those frames (median of valid pixels per box, 0 if none),
        cached per frame."""
        depth = self._entry(s)["depth"]
        missing = [f for f in dict.fromkeys(int(f) for f in frames) if (key, f) not in depth]
        if missing:
            from gaspprobe.models.adapter import TokenGrid
            from gaspprobe.scenes import patch_depth

            v = view if view is not None and all(f in view.at for f in missing) else self.view(s, missing)
            sub = v.scene.subset([v.at[f] for f in missing]) if len(missing) != v.scene.num_frames else v.scene
            boxes, (r, c) = self.boxes[key]
            F = len(missing)
            tg = TokenGrid(boxes=boxes.reshape(1, r, c, 4).expand(F, r, c, 4).contiguous(),
                           seq_index=torch.full((F, r, c), -1, dtype=torch.long), frame_size=sub.size)
            got = patch_depth(sub, tg).reshape(F, r * c).float()
            for k, f in enumerate(missing):
                depth[(key, f)] = got[k]
        return torch.stack([depth[(key, int(f))] for f in frames])

    def frames(self, clips: Sequence[Clip], views: "Sequence[_View] | None" = None) -> torch.Tensor:
        """uint8 [B, F, H, W, 3] frames of the clips."""
        views = views if views is not None else [self.view(c.scene, c.frames) for c in clips]
        return torch.stack([v.scene.rgb[[v.at[f] for f in c.frames]] for c, v in zip(clips, views)])

    def matches(self, clips: Sequence[Clip], views: "Sequence[_View] | None" = None) -> dict[str, MatchSet]:
        """``{"token": MatchSet, "8": MatchSet, ...}`` for a batch of clips (pairs i < j)."""
        out = {}
        views = list(views) if views is not None else [None] * len(clips)
        for key, (_, grid) in self.boxes.items():
            pb, pi, pj, mp, ms, mt, md = [], [], [], [], [], [], []
            tdep = []
            for b, c in enumerate(clips):
                # grid frame t stands for clip frame c.frames[anchors[t]] (video), else c.frames[t]
                fr = list(c.frames) if self.anchors is None else [c.frames[a] for a in self.anchors]
                self.ensure(c.scene, [(fr[i], fr[j]) for i in range(len(fr)) for j in range(i + 1, len(fr))], key,
                            views[b])
                tdep.append(self._token_depth(c.scene, key, fr, views[b]))
                for i in range(len(fr)):
                    for j in range(i + 1, len(fr)):
                        src, tgt, dep = self._pair(c.scene, fr[i], fr[j], key)
                        p = len(pb)
                        pb.append(b), pi.append(i), pj.append(j)
                        mp.append(torch.full_like(src, p)), ms.append(src), mt.append(tgt), md.append(dep)
            lt = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
            out[key] = MatchSet(pair_b=lt(pb), pair_i=lt(pi), pair_j=lt(pj), pair=torch.cat(mp),
                                src=torch.cat(ms), tgt=torch.cat(mt), depth=torch.cat(md),
                                token_depth=torch.stack(tdep), grid=grid)
        return out


@dataclass
class _View:
    """Some frames of a scene, read once: ``scene`` holds them in order, ``at[frame] = position``."""

    scene: object
    at: dict


def split_scenes(scenes: Sequence, val_fraction: float, seed: int) -> tuple[list, list]:
    """Deterministic (train, val) split of the training scenes by a seeded permutation.

    At least one scene stays in train; val is empty when ``val_fraction`` is 0 or there is one scene."""
    n = len(scenes)
    n_val = min(n - 1, int(round(n * val_fraction))) if val_fraction > 0 else 0
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919)).tolist()
    val_idx = sorted(perm[:n_val])
    train_idx = sorted(perm[n_val:])
    return [scenes[i] for i in train_idx], [scenes[i] for i in val_idx]


class CaptionStream:
    """Plain-text captions for the optional LM loss, cycled deterministically by data position.

    Micro-batch ``position`` (counted from 1) takes captions ``position * batch_size + b`` modulo
    the number of captions, so a resumed run sees the same text as an uninterrupted one."""

    def __init__(self, path: str, tokenizer, batch_size: int):
        from pathlib import Path

        from gaspprobe.errors import ConfigError

        p = Path(path)
        if not p.is_file():
            raise ConfigError("caption_file: file not found", path=p)
        self.captions = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not self.captions:
            raise DataError("no captions in file", path=p)
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self.sources = [str(p)]

    def batch(self, position: int, device) -> dict:
        """Tokenized ``input_ids`` / ``attention_mask`` / ``labels`` (padding masked to -100)."""
        texts = [self.captions[(position * self.batch_size + b) % len(self.captions)]
                 for b in range(self.batch_size)]
        cap = self.tokenizer(texts, return_tensors="pt", padding=True)
        labels = cap["input_ids"].masked_fill(cap["attention_mask"] == 0, -100)
        return {"input_ids": cap["input_ids"].to(device), "attention_mask": cap["attention_mask"].to(device),
                "labels": labels.to(device)}


class ClipBatches(torch.utils.data.Dataset):
    """Micro-batch ``k`` of one process as a dataset item: ``(frames uint8 [B, F, H, W, 3],
    {grid: MatchSet})``. Items are pure functions of ``k`` (the clip plan is seeded, the geometry
    exact), so DataLoader workers can compute them in any order and any number of processes."""

    def __init__(self, plan: ClipPlan, cache: "MatchCache", batch_size: int, rank: int = 0, world: int = 1):
        self.plan, self.cache = plan, cache
        self.batch_size, self.rank, self.world = int(batch_size), int(rank), int(world)

    def __len__(self) -> int:  # positions are unbounded; the sampler says which ones are read
        return 1 << 62

    def __getitem__(self, k: int):
        clips = self.plan.batch(int(k), self.batch_size, self.rank, self.world)
        views = [self.cache.view(c.scene, c.frames) for c in clips]  # each clip's frames read once
        return self.cache.frames(clips, views), self.cache.matches(clips, views)


def _as_is(item):
    return item


def batch_stream(batches: ClipBatches, start: int, stop: int, num_workers: int = 0, seed: int = 0):
    """Iterator over micro-batches ``start .. stop-1`` in order.

    With ``num_workers > 0`` a :class:`torch.utils.data.DataLoader` computes them (frames and GT
    matches) in worker processes ahead of the training step; the batches are the same as with
    ``num_workers=0`` (in process), so a run is the same whatever the worker count, and a resumed
    run starts the stream at its checkpoint's position. The loader gets its own seeded generator,
    so the global RNG (saved in checkpoints) is never drawn from."""
    if num_workers <= 0:
        return (batches[k] for k in range(start, stop))
    from torch.utils.data import DataLoader

    return iter(DataLoader(batches, batch_size=None, sampler=range(start, stop), num_workers=num_workers,
                           collate_fn=_as_is, prefetch_factor=2, persistent_workers=False,
                           generator=torch.Generator().manual_seed(int(seed))))
