"""``python -m gaspprobe.benchmarking run ...`` = ``gaspprobe bench run ...``.

For launchers that need a module or a Python file rather than a console script, e.g. sharding:
``torchrun --nproc_per_node 2 -m gaspprobe.benchmarking run --model ... --out RUN`` or
``accelerate launch --multi_gpu --num_processes 8 -m gaspprobe.benchmarking run ...``.
"""

import sys

from gaspprobe.cli import main

if __name__ == "__main__":
    main(["bench", *sys.argv[1:]])
