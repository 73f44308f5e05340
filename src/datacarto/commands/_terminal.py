"""What the training commands print: stage lines, one progress bar for training, the rest in a log.

For ``train``, ``focus``, ``run``, ``demo``, ``audit`` and ``ensemble`` the CLI:

* sends the logs and warnings of transformers, datasets, accelerate and torch to
  ``<output_dir>/datacarto.log`` (also to stderr with ``--verbose``); datacarto's own warnings stay
  on stderr as ``datacarto: warning: ...`` lines;
* turns off the libraries' own progress bars (weight loading, tokenizing, prediction) and gives
  the Trainer one bar for training instead (transformers' ``DEFAULT_PROGRESS_CALLBACK``), with the
  epoch, the step and the loss, and a line per evaluation (loss, and accuracy and macro-F1 from the
  recorded logits: no ``compute_metrics`` needed);
* when stderr is not a terminal (CI logs, a pipe), draws no bars at all: training says where it is
  in plain lines (its size, then at 25, 50 and 75% of the steps when at least :data:`LINE_GAP_S`
  seconds passed since the last line, and after any :data:`HEARTBEAT_S` seconds without one, then
  its end), so the log holds no carriage returns.

Everything it changes is put back by :meth:`Terminal.close` (the CLI calls it on the way out).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path

from ._help import asks_help

TRAINING_COMMANDS = ("train", "focus", "run", "demo", "audit", "ensemble")
LIBRARIES = ("transformers", "datasets", "accelerate", "torch", "huggingface_hub", "py.warnings")
LOG_NAME = "datacarto.log"
QUIET_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
DEMO_OUTPUT = "demo_output"  # commands/demo.py's default --output-dir
#: off a terminal, a progress line at 25, 50 and 75% of the steps, each at least this long after the last
LINE_GAP_S = 5.0
#: off a terminal, a progress line also whenever training said nothing for this long (CI watchdogs)
HEARTBEAT_S = 60.0


class DeferredFileHandler(logging.Handler):
    """Appends records to ``path``; holds them in memory until its folder exists (made by the command).

    ``path`` None (a command with no output folder, e.g. ``ensemble``): no file; the records are
    dropped (``--verbose`` shows them on stderr).
    """

    def __init__(self, path: Path | None):
        super().__init__(level=logging.INFO)
        self.path, self.pending, self.stream = path, [], None
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def _open(self) -> bool:
        if self.path is None:
            self.pending = []
            return False
        if self.stream is None and self.path.parent.is_dir():
            self.stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
            self.stream.writelines(line + "\n" for line in self.pending)
            self.pending = []
        return self.stream is not None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if self._open():
                self.stream.write(line + "\n")
                self.stream.flush()
            else:
                self.pending.append(line)
        except Exception:  # a log line must never break a run
            self.handleError(record)

    def close(self) -> None:
        if self.pending:  # written if the folder exists by now; no empty log file otherwise
            self._open()
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        super().close()


def _flag_value(argv: list[str], *flags: str) -> str | None:
    """The value of the first of ``flags`` given as ``--flag VALUE`` or ``--flag=VALUE``."""
    for k, arg in enumerate(argv):
        for flag in flags:
            if arg == flag and k + 1 < len(argv):
                return argv[k + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return None


def output_dir_of(name: str, argv: list[str]) -> Path | None:
    """The folder a command writes into, read off its arguments (where the log goes); None if none."""
    given = _flag_value(argv, "--output-dir", "--output_dir")
    if given:
        return Path(given)
    if name == "demo":
        return Path(DEMO_OUTPUT)
    config = _flag_value(argv, "--config") if name == "run" else None
    if config:
        try:
            import yaml

            with open(config, encoding="utf-8") as f:
                found = (yaml.safe_load(f) or {}).get("output_dir")
            if found:
                return Path(found)
        except Exception:  # an unreadable config is the run command's error to report
            pass
    return None


def is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Terminal:
    """The CLI's output settings for one command; :meth:`close` undoes them."""

    def __init__(self, name: str, argv: list[str], *, verbose: bool = False):
        self.active = name in TRAINING_COMMANDS and not asks_help(argv)  # help trains nothing: no torch
        self.undo: list = []
        if not self.active:
            return
        folder = output_dir_of(name, argv)
        self.handler = DeferredFileHandler(None if folder is None else folder / LOG_NAME)
        handlers = [self.handler]
        if verbose:
            loud = logging.StreamHandler(sys.stderr)
            loud.setFormatter(self.handler.formatter)
            handlers.append(loud)
        self._route_logs(handlers)
        self._route_warnings()
        self._quiet_bars(tty=is_terminal(sys.stderr))

    def _route_logs(self, handlers) -> None:
        import datasets.utils.logging  # noqa: F401  (each adds its stderr handler when first imported)
        import transformers.utils.logging  # noqa: F401

        for lib in LIBRARIES:
            logger = logging.getLogger(lib)
            saved = (logger.handlers[:], logger.propagate)
            logger.handlers[:] = list(handlers)
            logger.propagate = False
            self.undo.append(lambda lg=logger, s=saved: (lg.handlers.__setitem__(slice(None), s[0]),
                                                         setattr(lg, "propagate", s[1])))

    def _route_warnings(self) -> None:
        """Through ``formatwarning``, so recording warnings (``catch_warnings(record=True)``) still works."""
        own = str(Path(__file__).resolve().parents[1])
        library_log = logging.getLogger("py.warnings")
        previous = warnings.formatwarning

        def text(message, category, filename, lineno, line=None):
            if str(Path(filename).resolve()).startswith(own):
                return f"datacarto: warning: {message}\n"
            library_log.warning("%s:%s: %s: %s", filename, lineno, category.__name__, message)
            return ""  # said in the log, not on stderr

        warnings.formatwarning = text
        self.undo.append(lambda: setattr(warnings, "formatwarning", previous))

    def _quiet_bars(self, tty: bool) -> None:
        import transformers.trainer as trainer_module
        from datasets.utils import logging as datasets_logging
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        datasets_logging.disable_progress_bar()
        self.undo += [transformers_logging.enable_progress_bar, datasets_logging.enable_progress_bar]
        env = dict(QUIET_ENV) if not tty else {k: v for k, v in QUIET_ENV.items() if k != "TQDM_DISABLE"}
        for key, value in env.items():
            old = os.environ.get(key)
            os.environ[key] = value
            self.undo.append(lambda k=key, o=old: os.environ.pop(k, None) if o is None else os.environ.__setitem__(k, o))
        previous = trainer_module.DEFAULT_PROGRESS_CALLBACK
        trainer_module.DEFAULT_PROGRESS_CALLBACK = progress_callback(tty)
        self.undo.append(lambda: setattr(trainer_module, "DEFAULT_PROGRESS_CALLBACK", previous))

    def close(self) -> None:
        for step in reversed(self.undo):
            step()
        self.undo = []
        if self.active:
            self.handler.close()


def _fmt_logs(logs: dict, prefix: str = "") -> str:
    keys = [k for k in logs if k.startswith(prefix) and isinstance(logs[k], (int, float))
            and not k.endswith(("runtime", "per_second"))]
    return ", ".join(f"{k.removeprefix(prefix)} {logs[k]:.4g}" for k in keys)


def recorded_scores(output_dir, metrics: dict) -> dict:
    """Accuracy and macro-F1 of the evaluation just recorded (its last epoch file), or {} if none.

    The recording callback writes the evaluated split's logits in its ``on_evaluate``, which runs
    before the progress callback's: so no ``compute_metrics`` is needed for these two numbers.
    """
    try:
        import numpy as np
        from sklearn.metrics import f1_score

        from ..dynamics.generative import is_generative
        from ..dynamics.store import load_dynamics
        from ..record.examples import split_name

        key = next((k for k in metrics if k.endswith("_runtime")), "eval_runtime")
        split = split_name(key[: -len("_runtime")])
        if is_generative(output_dir, split):  # a causal LM has no classes: its loss says it all
            return {}
        dyn = load_dynamics(output_dir, split)
        pred = np.nan_to_num(dyn.logits[:, -1, :], nan=-np.inf).argmax(axis=1)
        return {"accuracy": float((pred == dyn.gold).mean()),
                "macro-F1": float(f1_score(dyn.gold, pred, average="macro", zero_division=0))}
    except Exception:  # nothing recorded for this split (or unreadable): the loss alone is said
        return {}


def progress_callback(tty: bool):
    """A TrainerCallback class: one tqdm bar on a terminal, else a few plain lines (see the module doc)."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self):
            self.bar, self.loss, self.next_line, self.start = None, None, 0, time.perf_counter()
            self.said = self.start

        def _say(self, text: str) -> None:
            self.said = time.perf_counter()
            if self.bar is not None:
                self.bar.write(text, file=sys.stderr)
            else:
                print(text, file=sys.stderr, flush=True)

        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            self.start, self.total = time.perf_counter(), max(int(state.max_steps or 0), 1)
            if tty:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=self.total, desc="training", dynamic_ncols=True, disable=False, file=sys.stderr)
            else:
                self._say(f"training: {self.total} steps, {args.num_train_epochs:g} epochs")
                self.next_line = 1

        def on_step_end(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            step, epoch = state.global_step, state.epoch or 0.0
            if self.bar is not None:
                self.bar.update(step - self.bar.n)
                self.bar.set_postfix_str(f"epoch {epoch:.2f}" + (f", loss {self.loss:.4g}" if self.loss is not None else ""),
                                         refresh=False)
            elif step < self.total:
                quarter = self.next_line <= 3 and step >= self.next_line * self.total / 4
                while self.next_line <= 3 and step >= self.next_line * self.total / 4:
                    self.next_line += 1
                quiet_for = time.perf_counter() - self.said
                if not ((quarter and quiet_for >= LINE_GAP_S) or quiet_for >= HEARTBEAT_S):
                    return
                loss = f", loss {self.loss:.4g}" if self.loss is not None else ""
                self._say(f"training: step {step}/{self.total} ({100 * step // self.total}%), epoch {epoch:.2f}{loss}")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            if "loss" in logs:
                self.loss = float(logs["loss"])

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if not state.is_world_process_zero or not metrics:
                return
            prefix = next((k for k in metrics if k.endswith("_runtime")), "eval_runtime")[: -len("runtime")]
            shown = {k: v for k, v in metrics.items() if k.startswith(prefix)}
            found = {f"{prefix}{k}": v for k, v in recorded_scores(args.output_dir, metrics).items()
                     if f"{prefix}{k}" not in shown and f"{prefix}{k.lower().replace('-', '_')}" not in shown}
            self._say(f"evaluation at epoch {state.epoch or 0:.2f}: {_fmt_logs({**shown, **found}, prefix)}")

        def on_train_end(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            loss = f", last loss {self.loss:.4g}" if self.loss is not None else ""
            self._say(f"training done: {state.global_step} steps in {time.perf_counter() - self.start:.1f} s{loss}")

    return Progress
