"""SmolVLM2 adapter (``model_type`` ``smolvlm``; e.g. ``HuggingFaceTB/SmolVLM2-2.2B-Instruct``).

(SmolVLM v1 checkpoints, e.g. ``HuggingFaceTB/SmolVLM-Instruct``, have ``model_type`` ``idefics3``
and load with the Idefics3 adapter.)

Token layout (transformers ``SmolVLMImageProcessor`` + ``SmolVLMProcessor`` + ``SmolVLMConnector``):

1. resize so the longest edge is ``size["longest_edge"]`` (1536 = 4 x 384; smaller frames are
   upscaled), aspect kept (short side ``int()``-truncated, rounded up to even);
2. ``resize_for_vision_encoder``: both sides rounded UP to multiples of the tile size
   ``T = max_image_size["longest_edge"]`` (384): a slight squash of the WHOLE frame, no crop/pad;
3. ``split_images``: ``rows x cols`` tiles of ``T x T`` (row-major), then a *global* view (the
   frame squashed to ``T x T``) last; a frame that fits one tile is not split;
4. each tile: the SigLIP patch convolution (14 px, stride 14, no padding) sees ``floor(T/p)`` = 27
   patches per side, i.e. only the first ``27 x 14 = 378`` of the tile's 384 px; the connector's
   pixel shuffle by ``scale_factor`` s = 3 merges 3 x 3 patches into one token -> ``n x n`` = 9 x 9
   tokens, row-major. So token (a, b) of a tile covers tile pixels ``[42 b, 42 (b+1))`` and the last
   6 px of every tile are covered by no token (an even split of the tile would drift by up to
   0.14 token).

Text: per tile ``<fake_token_around_image><row_i_col_j>`` + ``<image>`` * 81, ``\\n`` after each tile
row, then ``\\n<fake_token_around_image><global-img>`` + ``<image>`` * 81 + ``<fake_token_around_image>``.
A frame's spatial grid is ``(rows*n) x (cols*n)`` tokens assembled from its tiles' runs; the global
view's tokens are in ``grid.extra["global"]``.

Processor: ``SmolVLMProcessor`` takes a video processor (torchvision) and needs ``num2words``;
tiny models and hub checkpoints on machines without torchvision use :class:`SmolVLMImageOnlyProcessor`.

The tiny model keeps ``HuggingFaceTB/SmolVLM2-2.2B-Instruct``'s processor and vision geometry
(longest edge 1536, tiles of 384, patch 14, scale factor 3 -> 81 tokens per tile, bilinear,
mean/std 0.5, its chat template) with a 64-wide, 2-layer SigLIP and Llama and random weights.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers import SmolVLMProcessor

from gaspprobe.models.adapter import TokenGrid
from gaspprobe.models.base import BaseAdapter, FamilySpec, _unwrap

# HuggingFaceTB/SmolVLM2-2.2B-Instruct chat_template.json
_SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}"
    "{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


class SmolVLMImageOnlyProcessor(SmolVLMProcessor):
    """:class:`~transformers.SmolVLMProcessor` without a video processor (no torchvision needed)."""

    def __init__(self, image_processor=None, tokenizer=None, image_seq_len: int = 169, chat_template=None,
                 **kwargs):
        super().__init__(image_processor, tokenizer, None, image_seq_len=image_seq_len, chat_template=chat_template)

    def apply_chat_template(self, conversation, chat_template=None, **kwargs):
        # the parent reads video sampling defaults from the (absent) video processor; images need none
        from transformers.processing_utils import ProcessorMixin

        return ProcessorMixin.apply_chat_template(self, conversation, chat_template, **kwargs)


def _longest(size: Any) -> int:
    return int(size["longest_edge"] if isinstance(size, dict) else size.longest_edge)


def smolvlm_resized(H: int, W: int, ip: Any) -> tuple[int, int, int, int]:
    """(resized h, w, tile rows, tile cols) of an H x W frame (rows = cols = 0: not split, one T x T view)."""
    from transformers.models.smolvlm.image_processing_pil_smolvlm import get_resize_output_image_size

    T = _longest(ip.max_image_size)
    if not ip.do_image_splitting:
        return T, T, 0, 0
    h, w = (H, W)
    if ip.do_resize:
        h, w = get_resize_output_image_size(torch.empty(1, H, W), resolution_max_side=_longest(ip.size))
    aspect = w / h  # resize_for_vision_encoder
    if w >= h:
        w = math.ceil(w / T) * T
        h = math.ceil(int(w / aspect) / T) * T
    else:
        h = math.ceil(h / T) * T
        w = math.ceil(int(h * aspect) / T) * T
    if h > T or w > T:
        return h, w, (h - T) // T + 1, (w - T) // T + 1
    return h, w, 0, 0


def _tile_edges(n_tiles: int, T: int, n: int, q: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Start / end (resized px) of the n_tiles*n token columns: tile t, token b -> [t*T + b*q, t*T + (b+1)*q)."""
    t = torch.arange(n_tiles, dtype=torch.float64).repeat_interleave(n)
    b = torch.arange(n, dtype=torch.float64).repeat(n_tiles)
    start = t * T + b * q
    return start, start + q


class SmolVLMAdapter(BaseAdapter):
    #: the tiny model already keeps this checkpoint's processor and vision geometry
    real_checkpoints = ("HuggingFaceTB/SmolVLM2-2.2B-Instruct",)

    spec = FamilySpec(
        model_type="smolvlm",
        display_name="SmolVLM2",
        hub_examples=("HuggingFaceTB/SmolVLM2-2.2B-Instruct", "HuggingFaceTB/SmolVLM2-500M-Video-Instruct",
                      "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"),
        model_class="SmolVLMForConditionalGeneration",
        processor_class="SmolVLMProcessor",
        image_processor_class="SmolVLMImageProcessorPil",
        patch_size=14, merge_size=3, image_token="<image>",
        layers_path="model.text_model.layers",
        language_model_path="model.text_model",
        projector_keys=("connector",),
        vision_keys=("vision_model",),
        processor_kwargs=(("size", {"longest_edge": 1536}), ("max_image_size", {"longest_edge": 384})),
        notes="longest edge -> 1536, tiles of 384 + global view; 27 patches of 14 cover 378 px, shuffle 3 -> 9x9",
        image_only_processor="gaspprobe.models.smolvlm:SmolVLMImageOnlyProcessor",
    )

    def _images_arg(self, per_sample):
        return [list(ims) for ims in per_sample]

    video_path = ("video processor: each frame resized (aspect kept) then squashed to the 384 px tile, "
                  "no splitting; 27 x 27 patches pixel-shuffled 3 x 3 -> 9 x 9 <image> tokens per frame")

    def _video_grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                            video: int) -> TokenGrid:
        H, W = frame_size
        cfg = _unwrap(self.model).config
        p, s = int(cfg.vision_config.patch_size), int(cfg.scale_factor)
        pv = inputs["pixel_values"]  # [B, T, 3, S, S]: SmolVLM returns a video's frames as pixel_values
        T, Sh, Sw = int(pv.shape[1]), int(pv.shape[-2]), int(pv.shape[-1])
        g = Sh // p  # the tower's patches cover g*p of the S px (27 x 14 = 378 of 384)
        n = g // s
        pos = (inputs["input_ids"][row] == self.image_token_id).nonzero().squeeze(-1).cpu()
        if pos.numel() != n_frames * n * n or T < n_frames:
            raise ValueError(f"{pos.numel()} video tokens in row {row}, expected {n_frames}x{n}x{n}")
        # the whole frame ends up squashed onto the S x S tile (its second resize), so a token's box is
        # its s x s patch block of the covered g*p px, scaled back to the frame
        grid = TokenGrid.regular(n_frames, n, n, (H, W), crop=(0.0, 0.0, W * g * p / Sw, H * g * p / Sh))
        grid.seq_index = pos.reshape(n_frames, n, n)
        grid.extra["frames"] = torch.arange(n_frames)[:, None]
        return grid

    def _grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                      first_image: int) -> TokenGrid:
        H, W = frame_size
        ip = self.processor.image_processor
        cfg = _unwrap(self.model).config
        T = _longest(ip.max_image_size)
        p, s = int(cfg.vision_config.patch_size), int(cfg.scale_factor)
        n = (T // p) // s  # tokens per tile side
        q = p * s  # tile pixels per token
        h, w, tr, tc = smolvlm_resized(H, W, ip)
        seq = n * n
        tiles = tr * tc
        per = (tiles + 1) * seq if tiles else seq
        pos = (inputs["input_ids"][row] == self.image_token_id).nonzero().squeeze(-1).cpu()
        if pos.numel() != n_frames * per:
            raise ValueError(f"{pos.numel()} image tokens in row {row}, expected {n_frames}x{per}")
        pos = pos.reshape(n_frames, per)

        def boxes(n_r: int, n_c: int, sy: float, sx: float) -> torch.Tensor:
            x0, x1 = _tile_edges(n_c, T, n, q)
            y0, y1 = _tile_edges(n_r, T, n, q)
            b = torch.broadcast_tensors(x0[None] * sx, y0[:, None] * sy, x1[None] * sx, y1[:, None] * sy)
            b = torch.stack(b, -1)
            return b.float()

        glob = boxes(1, 1, H / T, W / T)  # the global view (or the only view) is the frame squashed to T x T
        if not tiles:
            grid = TokenGrid(boxes=glob[None].expand(n_frames, -1, -1, -1).clone(),
                             seq_index=pos.reshape(n_frames, n, n), frame_size=(H, W))
            grid.extra["tiles"] = (0, 0)
            return grid
        R, C = tr * n, tc * n
        I = torch.arange(R)[:, None]
        J = torch.arange(C)[None, :]
        k = ((I // n) * tc + J // n) * seq + (I % n) * n + (J % n)  # [R, C] index into the tile runs
        b = boxes(tr, tc, H / h, W / w)
        grid = TokenGrid(boxes=b[None].expand(n_frames, -1, -1, -1).clone(), seq_index=pos[:, k], frame_size=(H, W))
        grid.extra["global"] = {"boxes": glob, "seq_index": pos[:, tiles * seq:].reshape(n_frames, n, n)}
        grid.extra["tiles"] = (tr, tc)
        return grid

    @classmethod
    def build_tiny_parts(cls, seed: int = 0):
        from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessorPil

        from gaspprobe.models.tiny import make_tokenizer

        rowcol = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
        tok = make_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<global-img>",
                              "<fake_token_around_image>", "<image>", "<end_of_utterance>", "<video>", *rowcol],
                             eos="<end_of_utterance>", pad="<|im_end|>", bos="<|im_start|>",
                             named={"fake_image_token": "<fake_token_around_image>", "image_token": "<image>",
                                    "global_image_token": "<global-img>",
                                    "end_of_utterance_token": "<end_of_utterance>"})
        T, P, s = 384, 14, 3  # 27 patches -> 9 x 9 = 81 tokens per tile (the real model's)
        cfg = SmolVLMConfig(
            vision_config=dict(model_type="smolvlm_vision", hidden_size=64, intermediate_size=128,
                               num_hidden_layers=2, num_attention_heads=4, image_size=T, patch_size=P,
                               hidden_act="gelu_pytorch_tanh"),
            text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id),
            scale_factor=s, image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=tok.pad_token_id,
            tie_word_embeddings=False,
        )
        torch.manual_seed(seed)
        model = SmolVLMForConditionalGeneration(cfg).eval()
        ip = SmolVLMImageProcessorPil(size={"longest_edge": 4 * T}, max_image_size={"longest_edge": T},
                                      do_image_splitting=True, resample=1, image_mean=[0.5] * 3, image_std=[0.5] * 3)
        from gaspprobe.models.video import family_processor

        # video_preprocessor_config.json of SmolVLM2-2.2B-Instruct
        vkw = dict(size={"longest_edge": T}, max_image_size={"longest_edge": T}, resample=1, fps=1, num_frames=64,
                   do_sample_frames=True, do_pad=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)
        return model, family_processor("SmolVLMProcessor", SmolVLMImageOnlyProcessor, "SmolVLMVideoProcessor", vkw,
                                       image_processor=ip, tokenizer=tok, image_seq_len=((T // P) // s) ** 2,
                                       chat_template=_SMOLVLM_TEMPLATE)
