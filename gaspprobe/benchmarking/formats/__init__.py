"""One loader module per benchmark question format (BLINK, MMSI-Bench, CV-Bench, ...).

Each module owns a format: its exact schema (checked row by row), the prompt of the harness code
it follows, its answer parser and any metric or aggregation the format needs, all as plain
functions registered by name in :mod:`gaspprobe.benchmarking.registry`. Shared plumbing (reading
the hub / parquet / JSON / TSV, writing embedded images to files, circular option rotation) lives
in :mod:`gaspprobe.benchmarking.formats.common`. Start with ``blink.py``: it is the smallest
complete example.
"""
