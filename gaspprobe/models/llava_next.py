"""LLaVA-NeXT (LLaVA-1.6) adapter (``model_type`` ``llava_next``; e.g. ``llava-hf/llava-v1.6-mistral-7b-hf``).

Token layout (transformers ``LlavaNextImageProcessor`` + ``LlavaNextProcessor`` +
``LlavaNextModel.pack_image_features``, "anyres" with ``spatial_unpad``). Every image, also each
of several images in one sample, is processed on its own:

* a **base view**: the frame squashed to ``S x S`` (336), ``(S/p)^2`` tokens (24 x 24, CLS dropped
  by the "default" strategy), listed in ``grid.extra["base"]``;
* the **high-resolution view** (the grid): the best ``image_grid_pinpoints`` canvas
  (``select_best_resolution``), the frame resized into it keeping its aspect
  (``get_patch_output_size``: the long side fills the canvas, the other is ``ceil``-ed) and
  zero-padded centred (``divmod(pad, 2)``), cut into ``S``-pixel tiles; the model joins the tiles'
  ``S/p`` patch grids into one canvas grid, removes whole padding rows/columns in FEATURE units
  (``unpad_image``) and appends one ``image_newline`` token after every row (their positions:
  ``grid.extra["newline"]``).

Token (r, c) of the high-resolution view covers canvas pixels ``p``-wide, which map back to the
frame through the resize scale and the centred padding; tokens next to the padded border cover part
padding, so their boxes reach past the frame (``grid.extra["padded"]``). The layout (which canvas
cell each token is, after unpadding) is read from the model's own ``pack_image_features`` run on
fake features whose channels are canvas coordinates, so the unpadding is exactly the model's.

The tiny model (:meth:`LlavaNextAdapter.build_tiny_parts`) keeps the real checkpoint's processor
and vision geometry (``llava-hf/llava-v1.6-mistral-7b-hf``: CLIP-L/14 at 336, the five pinpoints up
to 672 x 672 / 1008 x 336, bicubic, CLIP mean/std, ``vision_feature_layer`` -2, "default") with
64-wide, 2-layer towers and random weights.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from gaspprobe.errors import ModelError
from gaspprobe.models.adapter import TokenGrid
from gaspprobe.models.base import BaseAdapter, FamilySpec, _unwrap

# llava-hf/llava-v1.6-mistral-7b-hf chat_template.json (the [INST] template; images first)
_NEXT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + '</s> '}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

#: Real LLaVA-NeXT / LLaVA-NeXT-Video processor geometry (llava-hf hub preprocessor_config.json).
REAL_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def _side(size: Any) -> int:
    """The square side of a LLaVA size dict: height, else shortest_edge."""
    get = size.get if isinstance(size, dict) else (lambda k, d=None: getattr(size, k, d))
    return int(get("height", None) or get("shortest_edge"))


def anyres_frame_grid(pack: Callable, cfg: Any, ip: Any, frame_size: tuple[int, int]):
    """Layout of ONE anyres image: (hi-res boxes [rows, cols, 4], kind [n] long, order info).

    ``pack(features_list, image_sizes, newline)`` is the model's ``pack_image_features``. Returns
    ``(boxes, kind, rows, cols)`` where ``kind`` lists, in sequence order, 0 for a base-view token,
    1 for a high-resolution token and -1 for a newline, and ``boxes`` are the high-resolution
    tokens' boxes in the original frame (edge pixels), row-major.
    """
    from transformers.image_processing_utils import select_best_resolution

    H, W = frame_size
    S = int(cfg.vision_config.image_size)
    p = int(cfg.vision_config.patch_size)
    g = S // p
    pins = [list(x) for x in cfg.image_grid_pinpoints]
    if pins != [list(x) for x in ip.image_grid_pinpoints]:
        raise ModelError(f"image_grid_pinpoints: the processor's {[list(x) for x in ip.image_grid_pinpoints]} "
                         f"differ from the model config's {pins}")
    hb, wb = select_best_resolution((H, W), [list(x) for x in ip.image_grid_pinpoints])
    nph, npw = hb // S, wb // S
    # fake features: channel 0 = kind, 1..2 = the cell's canvas row / column index
    cy = torch.arange(g, dtype=torch.float64)
    tile = torch.stack(torch.broadcast_tensors(torch.zeros(g, g, dtype=torch.float64), cy[:, None], cy[None, :]), -1)
    feats = [tile.reshape(g * g, 3)]
    for ti in range(nph):
        for tj in range(npw):
            t = tile.clone()
            t[..., 0] = 1
            t[..., 1] += ti * g
            t[..., 2] += tj * g
            feats.append(t.reshape(g * g, 3))
    fake = torch.stack(feats)
    newline = torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64)
    packed = pack([fake], torch.tensor([[H, W]]), newline)
    kind = packed[:, 0].round().long()
    hr = packed[kind == 1]
    rows = int((kind == -1).sum())
    cols = int(hr.shape[0] // max(rows, 1))
    hr = hr.reshape(rows, cols, 3)
    # canvas: the frame resized to (nh, nw) inside (hb, wb) (get_patch_output_size), pasted at
    # (divmod(hb - nh, 2)[0], divmod(wb - nw, 2)[0]) on zeros
    sw, sh = wb / W, hb / H
    if sw < sh:
        nw, nh = wb, min(-(-H * sw // 1), hb)
    else:
        nh, nw = hb, min(-(-W * sh // 1), wb)
    nh, nw = int(nh), int(nw)
    py, px = (hb - nh) // 2, (wb - nw) // 2
    ky, kx = H / nh, W / nw
    y0, x0 = hr[..., 1] * p, hr[..., 2] * p
    boxes = torch.stack([(x0 - px) * kx, (y0 - py) * ky, (x0 + p - px) * kx, (y0 + p - py) * ky], -1).float()
    return boxes, kind, rows, cols


class LlavaNextAdapter(BaseAdapter):
    #: the tiny model already keeps this checkpoint's processor and vision geometry
    real_checkpoints = ("llava-hf/llava-v1.6-mistral-7b-hf",)

    spec = FamilySpec(
        model_type="llava_next",
        display_name="LLaVA-NeXT",
        hub_examples=("llava-hf/llava-v1.6-mistral-7b-hf", "llava-hf/llava-v1.6-vicuna-7b-hf"),
        model_class="LlavaNextForConditionalGeneration",
        processor_class="LlavaNextProcessor",
        image_processor_class="LlavaNextImageProcessorPil",
        patch_size=14, merge_size=1, image_token="<image>",
        processor_kwargs=(("size", {"shortest_edge": 336}), ("image_grid_pinpoints", REAL_PINPOINTS)),
        notes="per image: base view SxS (24x24) + anyres tiles of the best pinpoint canvas, unpadded, newline per row",
        projector_keys=("multi_modal_projector", "image_newline"),
        vision_keys=("vision_tower",),
    )

    def _pack(self) -> Callable:
        inner = _unwrap(self.model).model

        def pack(feats, sizes, newline):
            out, _ = inner.pack_image_features(feats, sizes, vision_feature_select_strategy="default",
                                               image_newline=newline)
            return out[0]
        return pack

    def _grid_for_row(self, inputs: Any, row: int, frame_size: tuple[int, int], n_frames: int,
                      first_image: int) -> TokenGrid:
        H, W = frame_size
        cfg = _unwrap(self.model).config
        boxes, kind, rows, cols = anyres_frame_grid(self._pack(), cfg, self.processor.image_processor, (H, W))
        per = int(kind.numel())
        pos = (inputs["input_ids"][row] == self.image_token_id).nonzero().squeeze(-1).cpu()
        if pos.numel() != n_frames * per:
            raise ValueError(f"{pos.numel()} image tokens in row {row}, expected {n_frames}x{per}")
        pos = pos.reshape(n_frames, per)
        g = int(cfg.vision_config.image_size) // int(cfg.vision_config.patch_size)
        grid = TokenGrid(boxes=boxes[None].expand(n_frames, -1, -1, -1).clone(),
                         seq_index=pos[:, kind == 1].reshape(n_frames, rows, cols), frame_size=(H, W))
        base = TokenGrid.regular(1, g, g, (H, W))  # the base view is the frame squashed to S x S
        grid.extra["base"] = {"boxes": base.boxes[0], "seq_index": pos[:, kind == 0].reshape(n_frames, g, g)}
        grid.extra["newline"] = pos[:, kind == -1]
        grid.extra["layout"] = "anyres"
        grid.extra["padded"] = bool((boxes[..., :2] < -1e-6).any() or (boxes[..., 2] > W + 1e-6).any()
                                    or (boxes[..., 3] > H + 1e-6).any())
        return grid

    @classmethod
    def build_tiny_parts(cls, seed: int = 0):
        from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor

        from gaspprobe.models.tiny import make_tokenizer

        tok = make_tokenizer(["<unk>", "<s>", "</s>", "<image>", "<pad>"], eos="</s>", pad="<pad>", bos="<s>",
                             named={"image_token": "<image>"})
        cfg = LlavaNextConfig(
            vision_config=_tiny_clip_336(),
            text_config=dict(model_type="mistral", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                             rope_theta=1e6, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id),
            image_token_index=tok.convert_tokens_to_ids("<image>"), image_grid_pinpoints=REAL_PINPOINTS,
            vision_feature_layer=-2, vision_feature_select_strategy="default", use_image_newline_parameter=True,
            projector_hidden_act="gelu", tie_word_embeddings=False,
        )
        torch.manual_seed(seed)
        model = LlavaNextForConditionalGeneration(cfg).eval()
        proc = LlavaNextProcessor(image_processor=real_next_image_processor(), tokenizer=tok, patch_size=14,
                                  vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                  chat_template=_NEXT_TEMPLATE)
        return model, proc


def _tiny_clip_336() -> dict:
    """CLIP-L/14-336's geometry (336 px, patch 14) at 64 wide, 2 layers."""
    return dict(model_type="clip_vision_model", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, image_size=336, patch_size=14, projection_dim=64, hidden_act="quick_gelu")


def real_next_image_processor():
    """``LlavaNextImageProcessorPil`` with the llava-hf checkpoints' preprocessor_config.json values."""
    from transformers import LlavaNextImageProcessorPil

    return LlavaNextImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                      do_center_crop=True, do_pad=True, resample=3, image_grid_pinpoints=REAL_PINPOINTS,
                                      image_mean=CLIP_MEAN, image_std=CLIP_STD)
