"""``python -m gaspprobe.training ARGS`` = ``gaspprobe train ARGS``; for ``accelerate launch``:

    accelerate launch --num_processes 2 --cpu -m gaspprobe.training --model M --scenes S --out RUN
"""

import sys

from gaspprobe.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
