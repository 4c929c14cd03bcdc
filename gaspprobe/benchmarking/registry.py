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

PARSERS: Registry = Registry("parser")
PARSERS.register("vsibench_first_token", "gaspprobe.benchmarking.parse:vsibench_first_token")
PARSERS.register("lmms_eval_lenient", "gaspprobe.benchmarking.parse:lmms_eval_lenient")
PARSERS.register("vlmevalkit_can_infer", "gaspprobe.benchmarking.parse:vlmevalkit_can_infer")
PARSERS.register("vlmevalkit_then_first_token", "gaspprobe.benchmarking.parse:vlmevalkit_then_first_token")

METRICS: Registry = Registry("metric")
METRICS.register("accuracy", "gaspprobe.benchmarking.metrics:accuracy")
METRICS.register("mra", "gaspprobe.benchmarking.metrics:mra")

AGGREGATIONS: Registry = Registry("aggregation")
AGGREGATIONS.register("vsibench_macro", "gaspprobe.benchmarking.metrics:vsibench_macro")
AGGREGATIONS.register("allangles_micro", "gaspprobe.benchmarking.metrics:allangles_micro")

# card.format -> loader(card, data, *, video_root, image_root, prompt_variant) -> list[Sample]
LOADERS: Registry = Registry("benchmark format")
LOADERS.register("vsibench", "gaspprobe.benchmarking.vsibench:load_samples")
LOADERS.register("allangles", "gaspprobe.benchmarking.allangles:load_samples")
