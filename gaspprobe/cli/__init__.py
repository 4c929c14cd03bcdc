"""The ``gaspprobe`` command line: a thin typer layer over :mod:`gaspprobe.api`.

Each command group lives in its own module here (``scenes``, ``models``, ``probe``, ``train``,
``bench``, ``report``, ``loop``, ``perf``) and only maps arguments to a config and calls the
library. Errors the user can fix (:class:`gaspprobe.errors.GaspError`) become one line on stderr
and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
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


_USER_OS_ERRNOS = {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.ENOSPC,
                   errno.EROFS, errno.EDQUOT, errno.ENAMETOOLONG}


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as ONE stderr line (the default format adds the source line under it)."""
    text = " ".join(str(message).split())
    print(f"warning: {text} ({category.__name__})", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning user errors into one line + exit 2.

    Usage errors (unknown flag, a value of the wrong type) are user errors too: one line naming
    the flag, exit 2, instead of click's boxed usage text. Warnings print as one line each.
    """
    import warnings

    try:  # typer >= 0.20 vendors click as typer._click; older typer uses click itself
        from typer._click import exceptions as cex
    except ImportError:  # pragma: no cover
        from click import exceptions as cex

    warnings.showwarning = _one_line_warning
    try:
        code = app(args=argv, prog_name="gaspprobe", standalone_mode=False)
    except GaspError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except cex.NoArgsIsHelpError as e:  # `gaspprobe bench` alone: typer has printed the help already
        sys.exit(e.exit_code)
    except cex.ClickException as e:
        ctx = getattr(e, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        print(f"error: {where}{' '.join(e.format_message().split())}{hint}", file=sys.stderr)
        sys.exit(e.exit_code)
    except OSError as e:
        # The file system refused a path the user gave (--out is an existing file, a read-only or
        # full disk, no permission): one line naming it. Other OSErrors (ENOENT of an internal file,
        # say) are bugs and keep their traceback.
        if e.errno not in _USER_OS_ERRNOS or not e.filename:
            raise
        print(f"error: {e.filename}: {e.strerror or type(e).__name__}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if type(code) is int else 0)  # typer.Exit(n) comes back as n; a command's return is not a status


if __name__ == "__main__":  # pragma: no cover
    main()
