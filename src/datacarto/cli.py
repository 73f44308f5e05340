"""The ``datacarto`` command: a thin shell over the Python API.

Each subcommand lives in ``datacarto/commands/<name>.py`` and defines ``main(argv)``.
Errors the user can fix (bad input, missing or unreadable files, a full or read-only disk) are printed
as one line ``datacarto: error: ...`` with exit code 2; ``datacarto --debug COMMAND`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
import traceback

COMMANDS = {
    "train": ("datacarto.commands.train", "fine-tune a model while recording training dynamics"),
    "metrics": ("datacarto.commands.metrics", "compute per-example metrics and regions of a run"),
    "map": ("datacarto.commands.map", "draw the data map (PNG/PDF/SVG and interactive HTML)"),
    "serve": ("datacarto.commands.serve", "serve the interactive data map of a large run from a local server"),
    "select": ("datacarto.commands.select", "select a focused subset of the training data"),
    "focus": ("datacarto.commands.focus", "fine-tune on a focused subset"),
    "ensemble": ("datacarto.commands.ensemble", "combine N models by weighted mean logits"),
    "audit": ("datacarto.commands.audit", "inject label noise and measure how well each score finds it"),
    "label-errors": ("datacarto.commands.label_errors", "estimate how many labels are wrong, flag them, write a review queue"),
    "apply-corrections": ("datacarto.commands.apply_corrections", "write a run's data with reviewed labels corrected"),
    "run": ("datacarto.commands.run", "run the whole pipeline and write a report"),
    "demo": ("datacarto.commands.demo", "run the whole pipeline on a built-in data set, offline"),
    "import-allenai": ("datacarto.commands.interop", "import allenai/cartography training dynamics"),
    "export-allenai": ("datacarto.commands.interop", "export training dynamics in allenai/cartography's format"),
}

EXIT_USER_ERROR = 2


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: datacarto [--debug] COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'datacarto COMMAND --help' for a command's options.",
              "--debug: print the traceback of an error as well as its one-line message."]
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


def other_rank() -> bool:
    """A process that torchrun started beside rank 0 (``RANK`` > 0): it prints nothing, so each line is
    said once, by rank 0, which holds the gathered results. A bug's traceback still shows on every rank."""
    return os.environ.get("RANK", "0").strip() not in ("", "0")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


_OS_ERRORS = {
    errno.ENOSPC: "cannot write {f}: no space left on device",
    errno.EDQUOT: "cannot write {f}: disk quota exceeded",
    errno.EROFS: "cannot write {f}: read-only file system",
    errno.EACCES: "cannot access {f}: permission denied",
    errno.EPERM: "cannot access {f}: operation not permitted",
    errno.EISDIR: "{f} is a directory, expected a file",
    errno.ENOTDIR: "{f}: a path component is not a directory",
    errno.ENOENT: "file not found: {f}",
    errno.EEXIST: "{f} already exists",
}


def describe_error(e: BaseException) -> str | None:
    """The one line the CLI prints for an error the user can act on, or None (a bug: traceback)."""
    import json

    from .errors import DatacartoError

    if isinstance(e, DatacartoError):
        return str(e)
    if isinstance(e, OSError):
        name = e.filename if e.filename is not None else None
        template = _OS_ERRORS.get(e.errno)
        if name is not None and template is not None:
            return template.format(f=name)
        if name is not None:
            return f"{name}: {e.strerror or _first_line(e)}"
        # no file named: the OS's reason (a full disk), or the message of a library's OSError
        return f"input/output error: {e.strerror}" if e.errno is not None and e.strerror else _first_line(e)
    if isinstance(e, UnicodeError):
        return f"cannot read text: not valid UTF-8 ({_first_line(e)})"
    if isinstance(e, json.JSONDecodeError):
        return f"invalid JSON: {_first_line(e)}"
    for module, kinds in (("yaml", ("YAMLError",)), ("pyarrow", ("ArrowException",))):
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(e, tuple(getattr(loaded, k) for k in kinds)):
            what = "invalid YAML" if module == "yaml" else "unreadable data (pyarrow)"
            return f"{what}: {_first_line(e)}"
    return None


def main(argv: list[str] | None = None) -> int:
    passive_omp_threads()  # every command: the training ones load torch
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(argv) and argv[0] == "--debug"
    if debug:
        argv = argv[1:]
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

    verbose = "--verbose" in rest  # library logs on stderr too (else only in <output_dir>/datacarto.log)
    rest = [a for a in rest if a != "--verbose"]
    terminal = Terminal(name, rest, verbose=verbose)
    try:
        with _rank_zero_speaks():  # a bug's exception leaves the block: its traceback shows on every rank
            return _run(name, rest, debug)
    finally:
        if "torch" in sys.modules:  # only a command that loaded torch can have started a process group
            from .record.distributed import end_distributed

            end_distributed()
        terminal.close()


@contextlib.contextmanager
def _rank_zero_speaks():
    """On a rank other than 0 (:func:`other_rank`), stdout and stderr go nowhere inside the block."""
    if not other_rank():
        yield
        return
    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        yield


def _run(name: str, rest: list[str], debug: bool) -> int:
    """Run one command; bad input and faults the user can act on become one line and exit code 2."""
    try:
        module = importlib.import_module(COMMANDS[name][0])
        code = module.main(rest) if name not in ("import-allenai", "export-allenai") else module.main(name, rest)
        return int(code or 0)
    except KeyboardInterrupt:
        return fail("interrupted")
    except Exception as e:
        message = describe_error(e)
        if message is None:
            raise  # a bug, not bad input: the traceback is what a report needs
        if debug:
            traceback.print_exc()
        return fail(message)

if __name__ == "__main__":
    sys.exit(main())
