"""What every model family shares: input building, per-layer capture hooks, features with grad, generation.

Split along its seams: the per-family facts are :mod:`gaspprobe.models.spec` (``FamilySpec``), the
hook machinery (early stop, the q/k recording attention function) :mod:`gaspprobe.models.hooks`, the
worker threads of streaming capture :mod:`gaspprobe.models.capture`; all names families use are
re-exported here.

A family module (``qwen_vl.py``, ``llava.py``, ...) subclasses :class:`BaseAdapter`, sets its
:class:`FamilySpec` and implements three things: how a list of frames becomes the processor's
``images`` argument, :meth:`BaseAdapter._grid_for_row` (token -> frame/row/col/pixel box, undoing
that family's resize/crop/merge/tiling) and ``build_tiny_parts`` (the tiny offline model). Everything
else lives here:

* :meth:`BaseAdapter.run_layers` - ONE forward pass (all frames as a multi-image input; or, with
  ``per_frame``, a batch of one-image samples, so each frame is seen alone) with forward hooks on
  the language model's decoder layers. Each hook gathers the image-token rows of its layer and calls
  the user's callback *inside the hook*, so the consumer handles layer i before layer i+1 exists,
  and the forward stops (an exception raised from the hook) right after the last requested layer.
* :meth:`BaseAdapter.capture` - the same as a generator (a worker thread runs the forward and
  blocks in each hook until the consumer asks for the next layer).
* mode ``"attention"``: the query/key of the image tokens *as the model's own attention function
  receives them* (after input norm, projections, q/k norms and rotary embeddings, Qwen's mrope with
  the real 3-D position ids included). They are taken by routing the language model's attention
  through a registered ``AttentionInterface`` function (``gaspprobe_qk``) that records q/k and then
  runs SDPA, so no family re-implements its rotary maths.
* :meth:`BaseAdapter.image_features` - all requested layers with gradients for GASP training.
* :meth:`BaseAdapter.generate` - chat-template generation, batched with left padding.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, ClassVar, Iterator, Sequence

import numpy as np
import torch

from gaspprobe.errors import DataError, ModelError
from gaspprobe.models.capture import _POOL, _Failure
from gaspprobe.models.hooks import (  # noqa: F401  (re-exported: families and tests import them from here)
    _ACTIVE_QK,
    _QK_LOCK,
    _QK_USERS,
    QK_IMPL,
    _getattr_path,
    _QKRecorder,
    _register_qk,
    _StopForward,
    _unwrap,
)
from gaspprobe.models.adapter import CAPTURE_MODES, FeatureMode, LayerCapture, TokenGrid, layer_names
from gaspprobe.models.spec import FamilySpec  # noqa: F401  (re-exported)

DEFAULT_PROMPT = "Describe the scene."


def as_frames(frames: Any, *, what: str = "frames") -> np.ndarray:
    """Validate and convert ``frames`` (uint8 [F,H,W,3] tensor/array, or a list of [H,W,3]) to numpy."""
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise DataError(f"{what}: empty list of frames")
        arrs = [as_frames(f[None] if np.ndim(f) == 3 else f, what=what) for f in frames]
        sizes = {a.shape[1:3] for a in arrs}
        if len(sizes) != 1:
            raise DataError(f"{what}: frames of one sample must share a size, got {sorted(sizes)}")
        return np.concatenate(arrs, 0)
    if isinstance(frames, torch.Tensor):
        if frames.dtype != torch.uint8:
            raise DataError(f"{what}: expected uint8 frames [F,H,W,3], got dtype {frames.dtype}")
        frames = frames.detach().cpu().numpy()
    a = np.asarray(frames)
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3 or 0 in a.shape:
        raise DataError(f"{what}: expected uint8 frames [F,H,W,3], got {a.dtype} {list(a.shape)}")
    return a


class BaseAdapter:
    """Shared implementation of the :class:`~gaspprobe.models.adapter.VLMAdapter` protocol."""

    spec: ClassVar[FamilySpec]

    def __init__(self, model: Any, processor: Any, model_id: str = ""):
        self.model = model.eval()
        self.processor = processor
        self.model_id = str(model_id)
        self.last_grid: TokenGrid | None = None
        from gaspprobe.models.pixels import pixel_settings

        #: the processor's pixel budget in effect (``gaspprobe.models.pixels.pixel_settings``),
        #: for producers to record in their manifests
        self.pixels: dict = pixel_settings(processor) if hasattr(processor, "image_processor") else {}
        tok = getattr(processor, "tokenizer", None)
        if tok is not None:
            tok.padding_side = "left"  # batched generation continues every row at the same column

    # ------------------------------------------------------------------ family hooks
    @classmethod
    def build_tiny_parts(cls, seed: int = 0) -> tuple[Any, Any]:  # pragma: no cover - abstract
        """(randomly initialised model, processor) of this family, tiny."""
        raise NotImplementedError

    #: Hub ids whose processor and vision geometry :meth:`build_real_parts` reproduces (first = default).
    real_checkpoints: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def build_real_parts(cls, checkpoint: str | None = None, seed: int = 0) -> tuple[Any, Any]:
        """(model, processor) with tiny widths at a REAL checkpoint's processor and vision geometry.

        Grid tests run on these (the geometry decides the token boxes; widths and depths do not).
        The default is :meth:`build_tiny_parts`, for families whose tiny model already keeps its
        real checkpoint's geometry; families whose tiny processor is shrunk override this."""
        cls._check_real(checkpoint)
        return cls.build_tiny_parts(seed)

    @classmethod
    def _check_real(cls, checkpoint: str | None) -> str | None:
        if checkpoint is not None and cls.real_checkpoints and checkpoint not in cls.real_checkpoints:
            raise ModelError(f"checkpoint: {checkpoint!r} is not a real setting of {cls.spec.model_type} "
                             f"(known: {', '.join(cls.real_checkpoints)})")
        return checkpoint or (cls.real_checkpoints[0] if cls.real_checkpoints else None)

    def _images_arg(self, per_sample: list[list[Any]]) -> Any:
        """The processor's ``images`` argument for a batch (default: one flat list, in order)."""
        return [im for ims in per_sample for im in ims]

    def _grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                      first_image: int) -> TokenGrid:  # pragma: no cover - abstract
        """TokenGrid of batch row ``row`` (its images start at ``first_image`` in the batch)."""
        raise NotImplementedError

    @property
    def image_token_id(self) -> int:
        cfg = self.model.config
        for name in ("image_token_id", "image_token_index"):
            v = getattr(cfg, name, None)
            if v is not None:
                return int(v)
        return int(self.processor.tokenizer.convert_tokens_to_ids(self.spec.image_token))

    # ------------------------------------------------------------------ video
    #: the family's video path in transformers, in words ("" = none: images only). A family with
    #: one implements :meth:`_video_grid_for_row` (and its tiny builder adds the real video
    #: processor where torchvision imports; see :mod:`gaspprobe.models.video`).
    video_path: ClassVar[str] = ""

    #: frames per second the clip's frames are said to be apart (``VideoMetadata.fps``): Qwen2.5-VL
    #: and Qwen3-VL turn it into temporal positions / timestamps. Producers set it from their
    #: recipe or config and record it (default 2.0: qwen-vl-utils' sampling rate).
    video_fps: float = 2.0

    @classmethod
    def modalities(cls) -> tuple[str, ...]:
        """The input modalities this family takes (``images`` always; ``video`` with a video path)."""
        return ("images", "video") if cls.video_path else ("images",)

    def check_modality(self, modality: str) -> str:
        """``modality`` if this model can take it, else a one-line ConfigError (exit 2)."""
        from gaspprobe.errors import ConfigError
        from gaspprobe.models.video import check_modality, require_video

        check_modality(modality)
        if modality not in self.modalities():
            from gaspprobe.models.registry import ADAPTERS

            have = [n for n in ADAPTERS.names() if "video" in ADAPTERS.get(n).modalities()]
            raise ConfigError(f"modality: {self.spec.display_name} takes {', '.join(self.modalities())} only "
                              f"(families with a video path: {', '.join(have)})")
        if modality == "video":
            require_video(self.spec.display_name, self.processor)
        return modality

    def video_messages(self, prompt: str) -> list[dict]:
        """One user turn: the video, then the text."""
        content: list[dict] = [{"type": "video"}]
        if prompt:
            content.append({"type": "text", "text": prompt})
        return [{"role": "user", "content": content}]

    def _videos_kwargs(self, videos: list[np.ndarray]) -> dict:
        """The processor's video kwargs: frames are used as given (no resampling), with their timing."""
        from transformers.video_utils import VideoMetadata

        fps = float(self.video_fps)
        meta = [VideoMetadata(total_num_frames=len(v), fps=fps, frames_indices=list(range(len(v))),
                              height=int(v.shape[1]), width=int(v.shape[2])) for v in videos]
        return {"do_sample_frames": False, "video_metadata": meta}

    @property
    def video_seq_token_id(self) -> int:
        """The token id a video's tokens carry in the sequence (``video_token_id``; GLM-4.1V and
        InternVL expand a video into per-frame image tokens and override this)."""
        tid = self.video_token_id
        return self.image_token_id if tid is None else tid

    def _thw_video_grid(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                        video: int) -> TokenGrid:
        """The video grid of families with Qwen's temporal patches (Qwen2/2.5/3-VL, GLM-4.1V):
        ``video_grid_thw`` (t, gh, gw) gives t slices of (gh/merge) x (gw/merge) tokens tiling the
        whole frame (smart_resize: no crop), slice s made of frames s*tps .. s*tps+tps-1 (the video
        processor repeats the last frame to fill the last slice)."""
        H, W = frame_size
        vp = self.processor.video_processor
        merge, tps = int(vp.merge_size), int(vp.temporal_patch_size)
        t, gh, gw = (int(x) for x in inputs["video_grid_thw"][video].tolist())
        if t != -(-n_frames // tps):  # pragma: no cover - the processor pads to a multiple of tps
            raise ValueError(f"video_grid_thw t={t} for {n_frames} frames (temporal patch {tps})")
        pos = (inputs["input_ids"][row] == self.video_seq_token_id).nonzero().squeeze(-1).cpu()
        rows, cols = gh // merge, gw // merge
        if pos.numel() != t * rows * cols:
            raise ValueError(f"{pos.numel()} video tokens in row {row}, expected {t}x{rows}x{cols}")
        grid = TokenGrid.regular(t, rows, cols, (H, W))
        grid.seq_index = pos.reshape(t, rows, cols)
        grid.extra["frames"] = (torch.arange(t)[:, None] * tps + torch.arange(tps)[None]).clamp(max=n_frames - 1)
        grid.extra["resized"] = (gh * int(vp.patch_size), gw * int(vp.patch_size))
        return grid

    def _video_grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                            video: int) -> TokenGrid:  # pragma: no cover - abstract
        """TokenGrid of batch row ``row`` fed as video number ``video``: ``F`` of the grid is the
        temporal token slices, ``extra["frames"]`` long [T, k] the clip frames each slice covers."""
        raise NotImplementedError

    # ------------------------------------------------------------------ basics
    def decoder_layers(self, model: Any = None) -> torch.nn.ModuleList:
        """The language model's decoder layers (``layer.self_attn.q_proj`` etc.)."""
        return _getattr_path(_unwrap(model if model is not None else self.model), self.spec.layers_path)

    @property
    def num_layers(self) -> int:
        return len(self.decoder_layers())

    @property
    def hidden_size(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "text_config", cfg).hidden_size)

    def layer_names(self) -> list[str]:
        return layer_names(self.num_layers)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.model_id!r}, layers={self.num_layers}, "
                f"hidden={self.hidden_size})")

    # ------------------------------------------------------------------ inputs
    def messages(self, n_images: int, prompt: str) -> list[dict]:
        """One user turn: the images in order, then the text (the family's chat template renders it)."""
        content = [{"type": "image"} for _ in range(n_images)]
        if prompt:
            content.append({"type": "text", "text": prompt})
        return [{"role": "user", "content": content}]

    def prepare(self, samples: Sequence[tuple[Any, str]], *, add_generation_prompt: bool = True,
                modality: str = "images"):
        """Processor outputs (``BatchFeature`` on the model's device/dtype) for (frames, prompt) samples.

        ``modality="video"``: each sample's frames are ONE video through the processor's own video
        path (its video processor, ``do_sample_frames=False``, :attr:`video_fps`)."""
        if modality != "images":
            return self._prepare_video(samples, add_generation_prompt=add_generation_prompt, modality=modality)
        from PIL import Image

        per_sample, texts = [], []
        for i, (frames, prompt) in enumerate(samples):
            arr = as_frames(frames, what=f"sample {i} frames")
            per_sample.append([Image.fromarray(f) for f in arr])
            texts.append(self.processor.apply_chat_template(
                self.messages(len(arr), prompt), add_generation_prompt=add_generation_prompt, tokenize=False))
        inputs = self.processor(text=texts, images=self._images_arg(per_sample), return_tensors="pt",
                                padding=True)
        return inputs.to(device=self.device, dtype=self.dtype) if self.dtype.is_floating_point else inputs

    def _prepare_video(self, samples: Sequence[tuple[Any, str]], *, add_generation_prompt: bool, modality: str):
        self.check_modality(modality)
        texts, videos = [], []
        for i, (frames, prompt) in enumerate(samples):
            videos.append(as_frames(frames, what=f"sample {i} frames"))
            texts.append(self.processor.apply_chat_template(
                self.video_messages(prompt), add_generation_prompt=add_generation_prompt, tokenize=False))
        inputs = self.processor(text=texts, videos=videos, return_tensors="pt", padding=True,
                                videos_kwargs=self._videos_kwargs(videos))
        return inputs.to(device=self.device, dtype=self.dtype) if self.dtype.is_floating_point else inputs

    def _batch_grid(self, inputs: Any, frame_size: tuple[int, int], n_frames: int,
                    n_rows: int, modality: str = "images") -> tuple[TokenGrid, torch.Tensor]:
        """Grid of row 0 and the image-token positions of every row, ``idx`` long [B, N]."""
        if modality == "video":
            grids = [self._video_grid_for_row(inputs, b, frame_size, n_frames, b) for b in range(n_rows)]
            for g in grids:
                g.extra["modality"] = "video"
        else:
            grids = [self._grid_for_row(inputs, b, frame_size, n_frames, b * n_frames) for b in range(n_rows)]
        shapes = {g.shape for g in grids}
        if len(shapes) != 1:  # pragma: no cover - equal-size frames and prompts give equal rows
            raise ModelError(f"rows of one batch got different token grids {sorted(shapes)}")
        idx = torch.stack([g.seq_index.reshape(-1) for g in grids])
        return grids[0], idx

    def token_grid(self, frame_size: tuple[int, int], n_frames: int = 1, *, modality: str = "images") -> TokenGrid:
        """The grid a capture of ``n_frames`` frames of ``frame_size`` (H, W) gives (runs the processor only).

        ``seq_index`` is the positions of the default capture prompt."""
        H, W = int(frame_size[0]), int(frame_size[1])
        if H <= 0 or W <= 0 or n_frames <= 0:
            raise DataError(f"frame size and frame count must be positive, got {(H, W)} x {n_frames}")
        blank = np.zeros((n_frames, H, W, 3), np.uint8)
        inputs = self.prepare([(blank, DEFAULT_PROMPT)], modality=modality)
        return self._batch_grid(inputs, (H, W), n_frames, 1, modality)[0]

    @property
    def video_token_id(self) -> int | None:
        cfg = self.model.config
        for name in ("video_token_id", "video_token_index"):
            v = getattr(cfg, name, None)
            if v is not None:
                return int(v)
        return None

    def image_tokens(self, frame_size: tuple[int, int], n_frames: int = 1, *, modality: str = "images") -> int:
        """Image (or video) tokens - spatial, separators and extra views alike - that ``n_frames``
        frames of ``frame_size`` put in the sequence of one all-frames pass (runs the processor only)."""
        H, W = int(frame_size[0]), int(frame_size[1])
        blank = np.zeros((n_frames, H, W, 3), np.uint8)
        ids = self.prepare([(blank, DEFAULT_PROMPT)], modality=modality)["input_ids"][0]
        tid = self.video_seq_token_id if modality == "video" else self.image_token_id
        return int((ids == tid).sum())

    def check_pixels(self) -> None:
        """A pixel budget must leave every frame at least one image token (one-line ConfigError)."""
        from gaspprobe.errors import ConfigError

        try:
            n = self.image_tokens((224, 224), 1)
        except Exception as e:  # the processor itself refuses the settings
            raise ConfigError(f"pixels: {self.pixels} is refused by the processor "
                              f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})") from None
        if n < 1:
            raise ConfigError(f"pixels: {self.pixels} gives no image token for a 224x224 frame (below one token)")

    # ------------------------------------------------------------------ capture
    def capture_modes(self) -> tuple[str, ...]:
        """The capture modes this model can hook (see :data:`~gaspprobe.models.adapter.CAPTURE_MODES`).

        q/k/v need ``q_proj``/``k_proj``/``v_proj`` modules in every decoder layer's ``self_attn``;
        attention and q/k after rotary need the attention to go through transformers' attention
        interface (``self_attn.config``)."""
        attn = [getattr(layer, "self_attn", None) for layer in self.decoder_layers()]
        modes = ["hidden"]
        if all(a is not None and hasattr(a, "config") for a in attn):
            modes += ["attention", "q_rope", "k_rope"]
        for m in ("q", "k", "v"):
            if all(isinstance(getattr(a, f"{m}_proj", None), torch.nn.Module) for a in attn):
                modes.append(m)
        return tuple(m for m in CAPTURE_MODES if m in modes)

    def _resolve_layers(self, layers: Sequence[str] | None, mode: str) -> list[str]:
        allowed = self.layer_names()
        if mode not in CAPTURE_MODES:
            raise ModelError(f"mode must be one of {', '.join(CAPTURE_MODES)}, got {mode!r}")
        if mode not in self.capture_modes():
            raise ModelError(f"mode {mode!r}: {type(self).__name__} ({self.model_id}) cannot hook it "
                             f"(it has: {', '.join(self.capture_modes())})")
        if layers is None:
            return allowed if mode == "hidden" else allowed[1:]
        if isinstance(layers, str):
            layers = [layers]
        if not layers:
            raise ModelError("no layers requested (give layer names like 'vision', 'llm.0', or None for all)")
        bad = [name for name in layers if name not in allowed]
        if bad:
            raise ModelError(f"unknown layer(s) {bad}; this model has {allowed[0]}, {allowed[1]} ... {allowed[-1]}")
        if mode != "hidden" and "vision" in layers:
            raise ModelError(f"layer 'vision' has no self-attention; mode {mode!r} takes llm.* layers only")
        wanted = set(layers)
        return [name for name in allowed if name in wanted]  # model order, duplicates dropped

    def _install(self, model: Any, names: list[str], mode: str, idx: torch.Tensor,
                 emit: Callable[[str, torch.Tensor | None, torch.Tensor | None], None]) -> Callable[[], None]:
        """Register hooks that call ``emit(name, feats [B,N,D] | q, k)`` per layer; returns an undo function.

        After the last requested layer the hook raises :class:`_StopForward`."""
        dec = self.decoder_layers(model)
        last = names[-1]
        handles: list[Any] = []
        # index tensors go to the device ONCE: a host->device copy inside a hook would stall the
        # CPU until the GPU has caught up, at every layer (kernel launches could no longer run ahead)
        dev = next(dec.parameters()).device
        idx = idx.to(dev)
        rows = torch.arange(idx.shape[0], device=dev)[:, None]
        owner = threading.get_ident()  # the hooks fire for every forward of the model: act only on ours

        def gather(hs: torch.Tensor) -> torch.Tensor:
            if hs.device != idx.device:  # pragma: no cover - a model split over devices
                return hs[rows.to(hs.device), idx.to(hs.device)]
            return hs[rows, idx]  # [B, N, D]

        if mode == "hidden":
            if "vision" in names:
                def pre(mod, args, kwargs):
                    if threading.get_ident() != owner:
                        return None
                    hs = args[0] if args else kwargs["hidden_states"]
                    emit("vision", gather(hs), None)
                    if last == "vision":
                        raise _StopForward
                handles.append(dec[0].register_forward_pre_hook(pre, with_kwargs=True))
            for name in names:
                if name == "vision":
                    continue
                i = int(name.split(".")[1])

                def post(mod, args, out, name=name):
                    if threading.get_ident() != owner:
                        return None
                    hs = out[0] if isinstance(out, tuple) else out
                    emit(name, gather(hs), None)
                    if name == last:
                        raise _StopForward
                handles.append(dec[i].register_forward_hook(post))
            return lambda: [h.remove() for h in handles]

        if mode in ("q", "k", "v"):
            seq_len = [0]  # the decoder's sequence length, read as layer 0 starts

            def seq_len_pre(m, args, kwargs):
                seq_len[0] = (args[0] if args else kwargs["hidden_states"]).shape[1]
            handles.append(dec[0].register_forward_pre_hook(seq_len_pre, with_kwargs=True))
            for name in names:
                attn = dec[int(name.split(".")[1])].self_attn
                # after the q/k norm where the family has one (Qwen3, Gemma 3: it acts per head)
                norm = getattr(attn, f"{mode}_norm", None) if mode in ("q", "k") else None
                mod = norm if isinstance(norm, torch.nn.Module) else getattr(attn, f"{mode}_proj")

                def proj_hook(m, args, out, name=name):
                    if threading.get_ident() != owner:
                        return None
                    x = out[0] if isinstance(out, tuple) else out
                    if x.ndim == 4 and x.shape[1] != seq_len[0]:  # a norm applied as [B, heads, S, dh]
                        x = x.transpose(1, 2)
                    emit(name, gather(x.reshape(x.shape[0], x.shape[1], -1)), None)
                    if name == last:
                        raise _StopForward
                handles.append(mod.register_forward_hook(proj_hook))
            return lambda: [h.remove() for h in handles]

        # attention mode (and q/k after rotary): route the LLM's attention through the recording function
        _register_qk()
        attn_cfg = dec[0].self_attn.config
        mods = {id(dec[int(n.split(".")[1])].self_attn): int(n.split(".")[1]) for n in names}

        def emit_qk(i: int, q: torch.Tensor, k: torch.Tensor | None) -> None:
            emit(f"llm.{i}", q, k)
            if f"llm.{i}" == last:
                raise _StopForward

        key = (id(attn_cfg), owner)
        with _QK_LOCK:
            _ACTIVE_QK[key] = _QKRecorder(mods, idx, emit_qk, kind=mode)
            users = _QK_USERS.setdefault(id(attn_cfg), [0, attn_cfg._attn_implementation])
            users[0] += 1
            attn_cfg._attn_implementation = QK_IMPL

        def undo() -> None:
            with _QK_LOCK:
                _ACTIVE_QK.pop(key, None)
                users[0] -= 1
                if users[0] == 0:  # the last attention capture on this model restores its implementation
                    attn_cfg._attn_implementation = users[1]
                    _QK_USERS.pop(id(attn_cfg), None)
        return undo

    def prepare_capture(self, frames: Any, *, per_frame: bool = False, prompt: str | None = None,
                        modality: str = "images"):
        """Processor inputs, grid and image-token positions (``idx`` long [B, N]) of a capture.

        Pass the result as ``run_layers(..., prepared=...)`` to run several captures (or time the
        forward alone) without re-running the processor. ``modality="video"``: the frames are one
        video (the grid's F is then the temporal token slices; ``grid.extra["frames"]``)."""
        arr = as_frames(frames)
        prompt = DEFAULT_PROMPT if prompt is None else prompt
        F, H, W = arr.shape[:3]
        if modality != "images":
            if per_frame:
                from gaspprobe.errors import ConfigError

                raise ConfigError("per_frame: a video is one sequence of frames; per_frame takes modality images")
            inputs = self.prepare([(arr, prompt)], modality=modality)
            grid, idx = self._batch_grid(inputs, (H, W), F, 1, modality)
        elif per_frame:
            inputs = self.prepare([(arr[f:f + 1], prompt) for f in range(F)])
            g1, idx = self._batch_grid(inputs, (H, W), 1, F)
            # frame f is row f of the batch: boxes repeat, seq_index is the position in its own row
            grid = TokenGrid(boxes=g1.boxes.expand(F, -1, -1, -1).clone(),
                             seq_index=idx.reshape(F, g1.rows, g1.cols), frame_size=(H, W),
                             extra={**g1.extra, "per_frame": True})
        else:
            inputs = self.prepare([(arr, prompt)])
            grid, idx = self._batch_grid(inputs, (H, W), F, 1)
        return inputs, grid, idx

    def run_layers(self, frames: Any, callback: Callable[[LayerCapture], None], *,
                   mode: FeatureMode = "hidden", layers: Sequence[str] | None = None,
                   per_frame: bool = False, prompt: str | None = None, prepared: Any = None,
                   modality: str = "images") -> TokenGrid:
        """One forward pass; ``callback(LayerCapture)`` is called inside the hooks, layer by layer.

        Args:
            frames: uint8 [F,H,W,3] (tensor or array), the frames of one scene.
            callback: receives each layer's :class:`LayerCapture` (float32 [F,rows,cols,D] in
                ``feats``, or ``query``/``key`` [F,rows,cols,H*dh]) while the forward is paused in
                that layer's hook; drop it before returning to keep memory at one layer.
            mode: "hidden" (decoder-layer outputs; "vision" = projector output), "attention"
                (``query``/``key``), or "q", "k", "v" (projections before rotary), "q_rope",
                "k_rope" (after rotary), each in ``feats`` (see :class:`LayerCapture`).
            layers: subset of :meth:`layer_names` (default: all; attention mode: all ``llm.*``).
            per_frame: feed each frame alone (a batch of F one-image samples, still one pass).
            prompt: text after the images (default :data:`DEFAULT_PROMPT`).
            prepared: the result of :meth:`prepare_capture` (then ``frames``, ``per_frame``,
                ``prompt`` and ``modality`` are not used).
            modality: "images" (each frame an image) or "video" (the frames as one video through
                the family's video path; F of the captures is then the temporal token slices).
        Returns:
            the :class:`TokenGrid` of this pass (also ``self.last_grid``).
        """
        names = self._resolve_layers(layers, mode)
        inputs, grid, idx = prepared if prepared is not None else self.prepare_capture(
            frames, per_frame=per_frame, prompt=prompt, modality=modality)
        self.last_grid = grid
        F, R, C = grid.shape

        def emit(name: str, a: torch.Tensor, b: torch.Tensor | None) -> None:
            # [B, N, D] -> [F, R, C, D]: one pass = B 1 and N = F*R*C; per frame = B F and N = R*C
            def shape(x):
                return x.reshape(F, R, C, x.shape[-1]).float()
            if b is None:
                callback(LayerCapture(name, feats=shape(a)))
            else:
                callback(LayerCapture(name, query=shape(a), key=shape(b)))

        undo = self._install(self.model, names, mode, idx, emit)
        try:
            with torch.inference_mode():
                self.model(**inputs, use_cache=False)
        except _StopForward:
            pass
        finally:
            undo()
        return grid

    def capture(self, frames: Any, *, mode: FeatureMode = "hidden", layers: Sequence[str] | None = None,
                per_frame: bool = False, prompt: str | None = None, prepared: Any = None,
                modality: str = "images") -> Iterator[LayerCapture]:
        """Generator over :meth:`run_layers`: yields one :class:`LayerCapture` per layer, in order.

        A worker thread runs the forward and waits inside each layer's hook until the consumer
        asks for the next layer, so layer i+1 is computed only after the consumer is done with
        layer i (rebind or ``del`` the loop variable to free it). Breaking out of the loop stops
        the forward. ``self.last_grid`` is set before the first layer is yielded.
        """
        items: queue.Queue = queue.Queue()
        resume = threading.Semaphore(0)
        abort = threading.Event()
        finished = threading.Event()
        done = object()
        n_threads = torch.get_num_threads()

        def callback(cap: LayerCapture) -> None:
            items.put(cap)
            resume.acquire()
            if abort.is_set():
                raise _StopForward

        def work() -> None:
            if torch.get_num_threads() != n_threads:
                torch.set_num_threads(n_threads)
            try:
                self.run_layers(frames, callback, mode=mode, layers=layers, per_frame=per_frame, prompt=prompt,
                                prepared=prepared, modality=modality)
                items.put(done)
            except BaseException as e:  # handed to the consumer's thread
                items.put(_Failure(e))
            finally:
                finished.set()

        _POOL.submit(work)
        try:
            while True:
                item = items.get()
                if item is done:
                    break
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
                del item
                resume.release()
        finally:
            if not finished.is_set():  # the consumer stopped early: unblock the hook, let it stop the forward
                abort.set()
                resume.release()
                finished.wait()

    # ------------------------------------------------------------------ training
    def image_features(self, frames_batch: Any, layers: Sequence[str] | None = None, *,
                       model: Any = None, prompt: str | None = None, modality: str = "images",
                       ) -> dict[str, torch.Tensor]:
        """Image-token features of every requested layer, WITH gradients (GASP deep supervision).

        Args:
            frames_batch: uint8 [B,F,H,W,3]: B samples of F frames each (one forward, batch B).
            layers: subset of :meth:`layer_names` (default all).
            model: the module to run instead of ``self.model`` (e.g. the peft-wrapped model).
            prompt: text after the images (default :data:`DEFAULT_PROMPT`).
            modality: "images", or "video" (each sample one video; F of the result is then the
                temporal token slices, ``self.last_grid.extra["frames"]``).
        Returns:
            ``{name: float32 [B,F,rows,cols,D]}`` in layer order; grads flow to whatever the
            caller's grad mode allows. ``self.last_grid`` is set (row 0's grid).
        """
        if isinstance(frames_batch, torch.Tensor):
            frames_batch = frames_batch.detach().cpu().numpy()
        fb = np.asarray(frames_batch)
        if fb.ndim != 5:
            raise DataError(f"frames_batch: expected uint8 [B,F,H,W,3], got {fb.dtype} {list(fb.shape)}")
        names = self._resolve_layers(layers, "hidden")
        B, F, H, W = fb.shape[:4]
        prompt = DEFAULT_PROMPT if prompt is None else prompt
        inputs = self.prepare([(fb[b], prompt) for b in range(B)], modality=modality)
        grid, idx = self._batch_grid(inputs, (H, W), F, B, modality)
        self.last_grid = grid
        F, R, C = grid.shape
        out: dict[str, torch.Tensor] = {}

        def emit(name: str, a: torch.Tensor, b: torch.Tensor | None) -> None:
            out[name] = a.reshape(B, F, R, C, a.shape[-1]).float()

        run = model if model is not None else self.model
        undo = self._install(run, names, "hidden", idx, emit)
        try:
            run(**inputs, use_cache=False)
        except _StopForward:
            pass
        finally:
            undo()
        return out

    # ------------------------------------------------------------------ generation
    def generate(self, batch: Sequence[tuple[Sequence[Any], str]], *, max_new_tokens: int = 16,
                 do_sample: bool = False, modality: str = "images", **generate_kwargs: Any) -> list[str]:
        """Chat-template generation for a batch of (frames, prompt) samples, left-padded, greedy by default.

        Args:
            batch: [(frames uint8 [F,H,W,3] or list of [H,W,3], prompt str), ...]; the images come
                first in the user turn, then the prompt.
        Returns:
            the decoded new text of each sample (special tokens skipped).
        """
        if not batch:
            return []
        inputs = self.prepare(list(batch), add_generation_prompt=True, modality=modality)
        tok = self.processor.tokenizer
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=int(max_new_tokens), do_sample=do_sample,
                                      pad_token_id=tok.pad_token_id, **generate_kwargs)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [s.strip() for s in tok.batch_decode(new, skip_special_tokens=True)]
