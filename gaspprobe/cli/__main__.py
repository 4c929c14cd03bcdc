"""``python -m gaspprobe.cli`` = the ``gaspprobe`` console script."""

from gaspprobe.cli import main

main()
