"""Per-layer correspondence heads (deep supervision), used only in training and dropped at inference.

One :class:`CorrespondenceHead` per supervised layer: a 2-layer MLP ``d -> 2e -> e`` with GELU (the
shape reported for the GASP paper), whose L2-normalised output is the embedding the InfoNCE and
depth losses compare across frames. :class:`HeadBank` holds them keyed by layer name
(``"vision"``, ``"llm.i"``) and saves/loads them as ``heads.safetensors``.

SVD initialisation (``init="svd"``), exactly
--------------------------------------------
For the head on ``llm.i`` take that layer's query projection ``W_q`` (``[H*dh, d]``, the decoder
layer's ``self_attn.q_proj.weight``) and its SVD ``W_q = U S V^T``. With ``k = min(e, rank)``:

- first layer (``2e x d``): rows ``0..k-1`` are ``S_k V_k^T`` (the top-k query directions) and rows
  ``e..e+k-1`` are their negatives ``-S_k V_k^T``; remaining rows (when ``k < e``) are zero; bias 0.
- second layer (``e x 2e``): ``[I_e, -I_e]``; bias 0.

Because ``GELU(z) - GELU(-z) = z Phi(z) + z Phi(-z) = z`` exactly, the head at init computes
``h(x) = S_k V_k^T x = U_k^T W_q x``: the layer's own query vector of ``x`` expressed in its top-k
principal directions. Training therefore starts from the model's own attention geometry
(cosine similarity of heads = cosine of the query vectors restricted to their dominant subspace)
and the GELU lets it leave the linear regime. The head reads the layer's *output* hidden states,
while ``q_proj`` of that layer reads its (normed) input; the residual stream makes them close and
the cosine is invariant to the per-token RMSNorm scale, so no extra norm is applied.
``"vision"`` uses the first decoder layer's ``q_proj`` (the one that reads the projector output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal

import torch
from torch import nn

from gaspprobe.errors import DataError


class CorrespondenceHead(nn.Module):
    """``d -> 2e -> e`` MLP with GELU. ``forward(x [..., d]) -> [..., e]`` (not normalised)."""

    def __init__(self, d: int, e: int):
        super().__init__()
        self.d, self.e = int(d), int(e)
        self.fc1 = nn.Linear(d, 2 * e)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(2 * e, e)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))

    @torch.no_grad()
    def init_from_query(self, w_q: torch.Tensor) -> int:
        """SVD init from a query projection ``w_q`` [H*dh, d] (see module docstring).

        Returns k, the number of singular directions used."""
        if w_q.ndim != 2 or w_q.shape[1] != self.d:
            raise ValueError(f"w_q: expected [*, {self.d}], got {tuple(w_q.shape)}")
        _, S, Vh = torch.linalg.svd(w_q.detach().float(), full_matrices=False)
        k = min(self.e, int(S.shape[0]))
        top = S[:k, None] * Vh[:k]                                           # [k, d]
        w1 = torch.zeros(2 * self.e, self.d)
        w1[:k] = top
        w1[self.e:self.e + k] = -top
        eye = torch.eye(self.e)
        self.fc1.weight.copy_(w1.to(self.fc1.weight.dtype))
        self.fc1.bias.zero_()
        self.fc2.weight.copy_(torch.cat([eye, -eye], 1).to(self.fc2.weight.dtype))
        self.fc2.bias.zero_()
        return k


class HeadBank(nn.Module):
    """Heads keyed by layer name. Module keys replace ``.`` by ``_`` (``llm.3`` -> ``llm_3``)."""

    def __init__(self, layers: Iterable[str], d: int, e: int):
        super().__init__()
        self.layers = list(layers)
        self.d, self.e = int(d), int(e)
        self.heads = nn.ModuleDict({_key(n): CorrespondenceHead(d, e) for n in self.layers})

    def __getitem__(self, layer: str) -> CorrespondenceHead:
        return self.heads[_key(layer)]

    def forward(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{layer: [..., d]}`` -> ``{layer: [..., e]}`` L2-normalised, for the heads' layers."""
        out = {}
        for n in self.layers:
            h = self[n](feats[n].to(self[n].fc1.weight.dtype))
            out[n] = nn.functional.normalize(h, dim=-1)
        return out

    @torch.no_grad()
    def init(self, how: Literal["svd", "random"], query_weights: dict[str, torch.Tensor] | None = None,
             generator: torch.Generator | None = None) -> dict[str, int]:
        """Initialise every head: ``"svd"`` from ``query_weights[layer]`` ([H*dh, d]), or
        ``"random"`` (PyTorch's default Linear init drawn from ``generator``). Returns
        ``{layer: k}`` (singular directions used; 0 for random)."""
        used = {}
        for n in self.layers:
            head = self[n]
            if how == "svd":
                if query_weights is None or n not in query_weights:
                    raise ValueError(f"svd init needs the query projection of {n}")
                used[n] = head.init_from_query(query_weights[n])
            else:
                for lin in (head.fc1, head.fc2):
                    bound = 1.0 / lin.in_features ** 0.5   # = kaiming_uniform(a=sqrt(5)) bound
                    lin.weight.copy_((torch.rand(lin.weight.shape, generator=generator) * 2 - 1) * bound)
                    lin.bias.copy_((torch.rand(lin.bias.shape, generator=generator) * 2 - 1) * bound)
                used[n] = 0
        return used

    def save(self, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
        """Write ``heads.safetensors`` atomically (tensors keyed ``llm.3.fc1.weight``...)."""
        from safetensors.torch import save_file

        from gaspprobe.io import atomic_path

        tensors = {f"{n}.{k}": v.detach().cpu().contiguous() for n in self.layers
                   for k, v in self[n].state_dict().items()}
        meta = {"layers": ",".join(self.layers), "d": str(self.d), "e": str(self.e), **(metadata or {})}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "HeadBank":
        """Load heads written by :meth:`save`; a missing or foreign file is a one-line DataError."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise DataError("heads file not found", path=path)
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            bank = cls(meta["layers"].split(","), int(meta["d"]), int(meta["e"]))
        except Exception as e:  # safetensors raises several types on garbage
            raise DataError(f"not a heads file ({type(e).__name__})", path=path) from None
        for n in bank.layers:
            bank[n].load_state_dict({k: tensors[f"{n}.{k}"] for k in ("fc1.weight", "fc1.bias",
                                                                      "fc2.weight", "fc2.bias")})
        return bank


def _key(layer: str) -> str:
    return layer.replace(".", "_")


def query_weights(adapter, layers: Iterable[str]) -> dict[str, torch.Tensor]:
    """``{layer: W_q [H*dh, d]}`` of the decoder layer each head initialises from.

    ``llm.i`` -> decoder layer i's ``self_attn.q_proj``; ``vision`` -> decoder layer 0's. Under
    peft the ``q_proj`` is a LoRA wrapper; its frozen ``base_layer`` holds the pretrained weight."""
    dec = adapter.decoder_layers()
    out = {}
    for n in layers:
        i = 0 if n == "vision" else int(n.split(".")[1])
        q = dec[i].self_attn.q_proj
        q = getattr(q, "base_layer", q)
        out[n] = q.weight.detach()
    return out
