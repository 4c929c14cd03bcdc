"""The benchmark registries: benchmark cards, parsers, metrics, aggregations, loaders.

Registration happens here and only here. Entries are lazy ``"module:attr"`` strings (cards are file
names under ``gaspprobe/benchmarking/cards/``), so ``gaspprobe bench list`` imports neither torch nor pandas.
Every entry below is one line: a card name (its file is ``<name>.yaml``), or a function name in
the module it is listed under (the entry is ``module:name``).
"""

from __future__ import annotations

from gaspprobe.registry import Registry

_B = "gaspprobe.benchmarking"
_F = "gaspprobe.benchmarking.formats"


def _lazy(registry: Registry, entries: dict[str, tuple[str, ...]]) -> Registry:
    """Register every ``name`` listed under ``module`` as the lazy entry ``module:name``."""
    for module, names in entries.items():
        for name in names:
            registry.register(name, f"{module}:{name}")
    return registry


BENCHMARKS: Registry[str] = Registry("benchmark")
for _card in (
    "vsibench",
    "allangles",
    "synthetic_vsi",
    "synthetic_allangles",
    "synthetic_blink",
    # the EASI / 2026 spatial set (loaders in gaspprobe/benchmarking/formats/; docs/adding_a_benchmark.md)
    "vsibench_debiased",
    "blink_multiview",
    "blink_correspondence",
    "blink_depth",
    "blink_spatial",
    "mmsi",
    "cvbench_3d",
    "threedsr",
    "threedsr_circular",
    "viewspatial",
    "mindcube_tiny",
    "embspatial",
    "sitebench_image",
    "sitebench_video",
    "sparbench_tiny",
):
    BENCHMARKS.register(_card, f"{_card}.yaml")

PARSERS: Registry = _lazy(Registry("parser"), {
    f"{_B}.parse": ("vsibench_first_token", "lmms_eval_lenient", "vlmevalkit_can_infer",
                    "vlmevalkit_then_first_token"),
    f"{_F}.blink": ("lmms_eval_letter_prefix", "lmms_eval_073_letter"),
    f"{_F}.mmsi": ("mmsi_backtick",),
    f"{_F}.threedsr": ("threedsr_patterns",),
    f"{_F}.viewspatial": ("viewspatial_last_line",),
    f"{_F}.mindcube": ("mindcube_extract",),
    f"{_F}.sitebench": ("site_mmmu", "site_mmmu_strict"),
    f"{_F}.sparbench": ("spar_lmms_eval", "spar_strict"),
})

METRICS: Registry = _lazy(Registry("metric"), {
    f"{_B}.metrics": ("accuracy", "mra"),
    f"{_F}.sparbench": ("spar_number_or_vci",),
})

AGGREGATIONS: Registry = _lazy(Registry("aggregation"), {
    f"{_B}.metrics": ("vsibench_macro", "allangles_micro"),
    f"{_F}.common": ("micro_by_task", "circular_micro"),
    f"{_F}.threedsr": ("threedsr_circular",),
    f"{_F}.sitebench": ("site_caa",),
    f"{_F}.sparbench": ("spar_macro",),
})

# card.format -> loader(card, data, *, video_root, image_root, prompt_variant) -> list[Sample];
# the format's name is its module's name
LOADERS: Registry = Registry("benchmark format")
for _fmt in ("vsibench", "allangles"):
    LOADERS.register(_fmt, f"{_B}.{_fmt}:load_samples")
for _fmt in (
    "blink",
    "mmsi",
    "cvbench",
    "threedsr",
    "viewspatial",
    "mindcube",
    "embspatial",
    "sitebench",
    "sparbench",
):
    LOADERS.register(_fmt, f"{_F}.{_fmt}:load_samples")
