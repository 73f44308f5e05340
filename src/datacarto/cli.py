"""The ``datacarto`` command: a thin shell over the Python API.

Each subcommand lives in ``datacarto/commands/<name>.py`` and defines ``main(argv)``.
Errors the user can fix are printed as one line (no traceback) with a non-zero exit.
"""

from __future__ import annotations

import importlib
import os
import sys

COMMANDS = {
    "train": ("datacarto.commands.train", "fine-tune a model while recording training dynamics"),
    "metrics": ("datacarto.commands.metrics", "compute per-example metrics and regions of a run"),
    "map": ("datacarto.commands.map", "draw the data map (PNG/PDF/SVG and interactive HTML)"),
    "select": ("datacarto.commands.select", "select a focused subset of the training data"),
    "focus": ("datacarto.commands.focus", "fine-tune on a focused subset"),
    "ensemble": ("datacarto.commands.ensemble", "combine N models by weighted mean logits"),
    "audit": ("datacarto.commands.audit", "inject label noise and measure how well each score finds it"),
    "run": ("datacarto.commands.run", "run the whole pipeline and write a report"),
    "demo": ("datacarto.commands.demo", "run the whole pipeline on a built-in data set, offline"),
    "import-allenai": ("datacarto.commands.interop", "import allenai/cartography training dynamics"),
    "export-allenai": ("datacarto.commands.interop", "export training dynamics in allenai/cartography's format"),
}

EXIT_USER_ERROR = 2


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: datacarto COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'datacarto COMMAND --help' for a command's options."]
    return "\n".join(lines)


def fail(message: str) -> int:
    print(f"datacarto: error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def passive_omp_threads() -> None:
    """Let idle OpenMP threads sleep instead of spinning (unless the user chose otherwise).

    Must run before torch is imported. With OpenMP's default busy-waiting, torch's two threads on a
    two-core machine where another process also runs were measured 13x slower than with sleeping
    threads (MiniLM training: 2.5 vs 33 examples/s). ``OMP_WAIT_POLICY=ACTIVE`` restores spinning.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    passive_omp_threads()  # every command: the training ones load torch
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else EXIT_USER_ERROR
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"datacarto {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        return fail(f"unknown command {name!r}; commands: {', '.join(COMMANDS)}")
    from .commands._terminal import Terminal
    from .errors import DatacartoError

    verbose = "--verbose" in rest  # library logs on stderr too (else only in <output_dir>/datacarto.log)
    rest = [a for a in rest if a != "--verbose"]
    terminal = Terminal(name, rest, verbose=verbose)
    try:
        module = importlib.import_module(COMMANDS[name][0])
        code = module.main(rest) if name not in ("import-allenai", "export-allenai") else module.main(name, rest)
        return int(code or 0)
    except DatacartoError as e:
        return fail(str(e))
    except FileNotFoundError as e:
        return fail(f"file not found: {e.filename or e}")
    except KeyboardInterrupt:
        return fail("interrupted")
    finally:
        from .record.distributed import end_distributed

        end_distributed()
        terminal.close()


if __name__ == "__main__":
    sys.exit(main())
