"""The benchmark registries: benchmark cards, parsers, metrics, aggregations, loaders.

Registration happens here and only here. Entries are lazy ``"module:attr"`` strings (cards are file
names under ``gaspprobe/benchmarking/cards/``), so ``gaspprobe bench list`` imports neither torch nor pandas.
"""

from __future__ import annotations

from gaspprobe.registry import Registry

BENCHMARKS: Registry[str] = Registry("benchmark")
BENCHMARKS.register("vsibench", "vsibench.yaml")
BENCHMARKS.register("allangles", "allangles.yaml")
BENCHMARKS.register("synthetic_vsi", "synthetic_vsi.yaml")
BENCHMARKS.register("synthetic_allangles", "synthetic_allangles.yaml")
# the EASI / 2026 spatial set (loaders in gaspprobe/benchmarking/formats/; docs/adding_a_benchmark.md)
BENCHMARKS.register("vsibench_debiased", "vsibench_debiased.yaml")
BENCHMARKS.register("blink_multiview", "blink_multiview.yaml")
BENCHMARKS.register("blink_correspondence", "blink_correspondence.yaml")
BENCHMARKS.register("blink_depth", "blink_depth.yaml")
BENCHMARKS.register("blink_spatial", "blink_spatial.yaml")
BENCHMARKS.register("mmsi", "mmsi.yaml")
BENCHMARKS.register("cvbench_3d", "cvbench_3d.yaml")
BENCHMARKS.register("threedsr", "threedsr.yaml")
BENCHMARKS.register("threedsr_circular", "threedsr_circular.yaml")
BENCHMARKS.register("viewspatial", "viewspatial.yaml")
BENCHMARKS.register("mindcube_tiny", "mindcube_tiny.yaml")
BENCHMARKS.register("embspatial", "embspatial.yaml")
BENCHMARKS.register("sitebench_image", "sitebench_image.yaml")
BENCHMARKS.register("sitebench_video", "sitebench_video.yaml")
BENCHMARKS.register("sparbench_tiny", "sparbench_tiny.yaml")

PARSERS: Registry = Registry("parser")
PARSERS.register("vsibench_first_token", "gaspprobe.benchmarking.parse:vsibench_first_token")
PARSERS.register("lmms_eval_lenient", "gaspprobe.benchmarking.parse:lmms_eval_lenient")
PARSERS.register("vlmevalkit_can_infer", "gaspprobe.benchmarking.parse:vlmevalkit_can_infer")
PARSERS.register("vlmevalkit_then_first_token", "gaspprobe.benchmarking.parse:vlmevalkit_then_first_token")
PARSERS.register("lmms_eval_letter_prefix", "gaspprobe.benchmarking.formats.blink:lmms_eval_letter_prefix")
PARSERS.register("mmsi_backtick", "gaspprobe.benchmarking.formats.mmsi:mmsi_backtick")
PARSERS.register("threedsr_patterns", "gaspprobe.benchmarking.formats.threedsr:threedsr_patterns")
PARSERS.register("viewspatial_last_line", "gaspprobe.benchmarking.formats.viewspatial:viewspatial_last_line")
PARSERS.register("mindcube_extract", "gaspprobe.benchmarking.formats.mindcube:mindcube_extract")
PARSERS.register("site_mmmu", "gaspprobe.benchmarking.formats.sitebench:site_mmmu")
PARSERS.register("site_mmmu_strict", "gaspprobe.benchmarking.formats.sitebench:site_mmmu_strict")
PARSERS.register("spar_lmms_eval", "gaspprobe.benchmarking.formats.sparbench:spar_lmms_eval")
PARSERS.register("spar_strict", "gaspprobe.benchmarking.formats.sparbench:spar_strict")

METRICS: Registry = Registry("metric")
METRICS.register("accuracy", "gaspprobe.benchmarking.metrics:accuracy")
METRICS.register("mra", "gaspprobe.benchmarking.metrics:mra")
METRICS.register("spar_number_or_vci", "gaspprobe.benchmarking.formats.sparbench:spar_number_or_vci")

AGGREGATIONS: Registry = Registry("aggregation")
AGGREGATIONS.register("vsibench_macro", "gaspprobe.benchmarking.metrics:vsibench_macro")
AGGREGATIONS.register("allangles_micro", "gaspprobe.benchmarking.metrics:allangles_micro")
AGGREGATIONS.register("micro_by_task", "gaspprobe.benchmarking.formats.common:micro_by_task")
AGGREGATIONS.register("circular_micro", "gaspprobe.benchmarking.formats.common:circular_micro")
AGGREGATIONS.register("threedsr_circular", "gaspprobe.benchmarking.formats.threedsr:threedsr_circular")
AGGREGATIONS.register("site_caa", "gaspprobe.benchmarking.formats.sitebench:site_caa")
AGGREGATIONS.register("spar_macro", "gaspprobe.benchmarking.formats.sparbench:spar_macro")

# card.format -> loader(card, data, *, video_root, image_root, prompt_variant) -> list[Sample]
LOADERS: Registry = Registry("benchmark format")
LOADERS.register("vsibench", "gaspprobe.benchmarking.vsibench:load_samples")
LOADERS.register("allangles", "gaspprobe.benchmarking.allangles:load_samples")
LOADERS.register("blink", "gaspprobe.benchmarking.formats.blink:load_samples")
LOADERS.register("mmsi", "gaspprobe.benchmarking.formats.mmsi:load_samples")
LOADERS.register("cvbench", "gaspprobe.benchmarking.formats.cvbench:load_samples")
LOADERS.register("threedsr", "gaspprobe.benchmarking.formats.threedsr:load_samples")
LOADERS.register("viewspatial", "gaspprobe.benchmarking.formats.viewspatial:load_samples")
LOADERS.register("mindcube", "gaspprobe.benchmarking.formats.mindcube:load_samples")
LOADERS.register("embspatial", "gaspprobe.benchmarking.formats.embspatial:load_samples")
LOADERS.register("sitebench", "gaspprobe.benchmarking.formats.sitebench:load_samples")
LOADERS.register("sparbench", "gaspprobe.benchmarking.formats.sparbench:load_samples")
