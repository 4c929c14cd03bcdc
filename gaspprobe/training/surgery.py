"""Model surgery for GASP training: what trains (LoRA or the whole language model, plus the vision side).

Start at :func:`setup_model`. Every family-specific fact comes from the adapter's
:class:`~gaspprobe.models.base.FamilySpec` (where the language model sits, the projector's and the
vision tower's parameter names, the default LoRA pattern), never from a guessed name: Idefics3's
language model is ``model.text_model``, Qwen's ``model.language_model``, and a new family trains by
filling in its spec.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from gaspprobe.errors import ConfigError, ModelError


def family_spec(adapter: Any):
    """The adapter's :class:`FamilySpec` (a ``ModelError`` if it has none)."""
    spec = getattr(adapter, "spec", None)
    if spec is None or not hasattr(spec, "language_model_path"):
        raise ModelError(f"{type(adapter).__name__} has no FamilySpec with training facts "
                         "(language_model_path, projector_keys, vision_keys)")
    return spec


def lora_targets(adapter: Any, cfg: Any) -> str:
    """The LoRA ``target_modules`` regex this run uses: ``cfg.lora_targets`` or the family's default."""
    return cfg.lora_targets if cfg.lora_targets else family_spec(adapter).lora_targets


def vision_keys(spec: Any, vision: str) -> tuple[str, ...]:
    """Parameter-name fragments that train for ``vision`` (``projector`` or ``tower`` = tower + projector)."""
    if vision == "projector":
        return tuple(spec.projector_keys)
    if vision == "tower":
        return (*spec.vision_keys, *spec.projector_keys)
    return ()


def language_model(adapter: Any, model: nn.Module | None = None) -> nn.Module:
    """The language-model module at ``spec.language_model_path`` (under any peft wrapper)."""
    from gaspprobe.models.base import _getattr_path, _unwrap

    spec = family_spec(adapter)
    try:
        return _getattr_path(_unwrap(model if model is not None else adapter.model), spec.language_model_path)
    except AttributeError:
        raise ModelError(f"language_model_path: {spec.language_model_path!r} not found in this "
                         f"{spec.display_name} model") from None


def setup_model(adapter: Any, cfg: Any, vision: str) -> tuple[nn.Module, dict, str | None]:
    """Freeze everything, then make trainable: LoRA (peft) or the whole language model, plus the vision side.

    Args:
        adapter: the loaded adapter (its ``model`` is modified in place: grads, LoRA layers).
        cfg: the :class:`~gaspprobe.training.config.TrainConfig`.
        vision: ``none`` | ``projector`` | ``tower`` (already resolved from ``auto``).
    Returns:
        (module to run, trainable parameter counts ``{"lora", "llm", "vision"}``, the LoRA target
        regex used or None for full fine-tuning).
    """
    spec = family_spec(adapter)
    model = adapter.model
    for p in model.parameters():
        p.requires_grad_(False)
    counts = {"lora": 0, "llm": 0, "vision": 0}
    targets = None
    if cfg.full:
        lm_params = {id(p) for p in language_model(adapter).parameters()}
        # model order (not the submodule's) keeps the optimizer's parameter order stable
        for name, p in model.named_parameters():
            if id(p) in lm_params and "embed_tokens" not in name:
                p.requires_grad_(True)
                counts["llm"] += p.numel()
        if counts["llm"] == 0:
            raise ModelError(f"--full: no trainable parameters under {spec.language_model_path!r}")
        run = model
    else:
        from peft import LoraConfig, get_peft_model

        targets = lora_targets(adapter, cfg)
        lcfg = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=targets, bias="none")
        try:
            run = get_peft_model(model, lcfg)
        except ValueError as e:
            raise ConfigError(f"lora_targets: {str(e).splitlines()[0][:160]}") from None
        counts["lora"] = sum(p.numel() for n, p in run.named_parameters() if "lora_" in n and p.requires_grad)
        keys = vision_keys(spec, "tower")
        bad = [n for n, _ in run.named_parameters() if "lora_" in n and any(k in n for k in keys)]
        if bad:
            raise ConfigError(f"lora_targets: matches vision modules (e.g. {bad[0]}); restrict it to the "
                              f"language model ({spec.language_model_path})")
    if vision != "none":
        keys = vision_keys(spec, vision)
        for name, p in run.named_parameters():
            if "lora_" not in name and any(k in name for k in keys):
                p.requires_grad_(True)
                counts["vision"] += p.numel()
        if counts["vision"] == 0:
            raise ModelError(f"vision={vision}: no parameters named like {', '.join(keys)} in this "
                             f"{spec.display_name} model")
    return run, counts, targets


def trainable(module: nn.Module) -> dict[str, Any]:
    """``{name: parameter}`` of the trainable parameters, in module order (checkpoint layout)."""
    return {n: p for n, p in module.named_parameters() if p.requires_grad}
