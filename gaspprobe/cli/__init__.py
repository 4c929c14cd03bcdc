"""The ``gaspprobe`` command line: a thin typer layer over :mod:`gaspprobe.api`.

Each command group lives in its own module here (``scenes``, ``models``, ``probe``, ``train``,
``bench``, ``report``, ``loop``, ``perf``) and only maps arguments to a config and calls the
library. Errors the user can fix (:class:`gaspprobe.errors.GaspError`) become one line on stderr
and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from gaspprobe.errors import GaspError

app = typer.Typer(
    name="gaspprobe",
    help="Probe and improve the 3D spatial awareness of vision-language models (GASP).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from gaspprobe.cli import bench, loop, models, perf, probe, report, scenes, train

    app.add_typer(scenes.app, name="scenes", help="Make, check and look at scenes.")
    app.add_typer(models.app, name="model", help="Supported VLM families, tiny offline models.")
    app.add_typer(bench.app, name="bench", help="VSI-Bench, All-Angles Bench, synthetic benchmarks.")
    for mod in (probe, train, report, loop, perf):
        mod.register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning user errors into one line + exit 2."""
    try:
        app(args=argv, prog_name="gaspprobe")
    except GaspError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
