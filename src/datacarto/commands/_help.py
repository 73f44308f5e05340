"""``--help`` of the training commands without importing torch or transformers.

``datacarto train --help`` (and focus, audit, run) lists datacarto's own flags, read off the
commands' argument dataclasses, and says which ``TrainingArguments`` flags matter, with datacarto's
defaults. ``--help-all`` prints ``HfArgumentParser``'s full help instead (every ``TrainingArguments``
flag; it imports transformers, so it takes seconds).
"""

from __future__ import annotations

import argparse
import dataclasses

HELP_FLAGS = ("-h", "--help")
FULL_HELP_FLAG = "--help-all"
#: TrainingArguments flags named in the light help (every other one is accepted too)
COMMON_TRAINING_FLAGS = ("--learning_rate", "--num_train_epochs", "--per_device_train_batch_size",
                         "--per_device_eval_batch_size", "--seed", "--eval_strategy", "--save_strategy",
                         "--use_cpu", "--bf16", "--resume_from_checkpoint")


def asks_help(argv: list[str]) -> bool:
    """True when the command line asks for help (``-h``, ``--help`` or ``--help-all``): nothing runs."""
    return any(a in HELP_FLAGS or a == FULL_HELP_FLAG for a in argv)


class _Formatter(argparse.HelpFormatter):
    """Appends a flag's default unless it is None or False or its help already names one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


def _add_field(group, f: dataclasses.Field) -> None:
    names = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
    kind = f.type.__name__ if isinstance(f.type, type) else str(f.type)  # "bool", "list[int] | None", ...
    kwargs = {"help": f.metadata.get("help", ""), "dest": f.name}
    if f.default is not dataclasses.MISSING:
        kwargs["default"] = f.default
    elif f.default_factory is not dataclasses.MISSING:
        kwargs["default"] = f.default_factory()
    else:
        kwargs["required"] = True
    if "choices" in f.metadata:
        kwargs["choices"] = f.metadata["choices"]
    if kind.startswith("bool"):
        kwargs.update(nargs="?", metavar="BOOL")
    elif kind.startswith("list"):
        kwargs["nargs"] = "+"
    group.add_argument(*names, **kwargs)


def _training_note(defaults: dict) -> str:
    shown = ", ".join(f"{k} {v}" for k, v in defaults.items())
    return (f"--output-dir DIR (--output_dir) is required. Every flag of transformers' TrainingArguments is "
            f"accepted too, with dashes or underscores: {', '.join(COMMON_TRAINING_FLAGS)}, ... "
            f"datacarto's defaults where they differ from the Trainer's: {shown}. "
            f"{FULL_HELP_FLAG} lists every TrainingArguments flag with its help (imports transformers).")


def print_training_help(dataclass_types, *, prog: str, defaults: dict) -> None:
    """The help of a command parsed by ``parse_with_training_args``, from its dataclasses alone."""
    parser = argparse.ArgumentParser(prog=prog, formatter_class=_Formatter)
    parser.add_argument(FULL_HELP_FLAG, action="store_true", default=argparse.SUPPRESS,
                        help="show the help with every TrainingArguments flag and exit")
    for dtype in dataclass_types:
        doc = (dtype.__doc__ or "").strip()
        own = doc and not doc.startswith(dtype.__name__ + "(")  # not the signature dataclasses writes
        group = parser.add_argument_group(dtype.__name__, doc.splitlines()[0].replace("``", "") if own else None)
        for f in dataclasses.fields(dtype):
            if f.init:
                _add_field(group, f)
    parser.add_argument_group("TrainingArguments", _training_note(defaults))
    parser.print_help()
