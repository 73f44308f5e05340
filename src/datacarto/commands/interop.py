"""``datacarto import-allenai DIR OUT`` and ``datacarto export-allenai RUN OUT``."""

from __future__ import annotations

import argparse

from ..dynamics.interop import export_allenai, import_allenai


def main(name: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"datacarto {name}")
    if name == "import-allenai":
        parser.description = "Read allenai/cartography dynamics_epoch_N.jsonl files into a datacarto run."
        parser.add_argument("src", help="folder holding training_dynamics/dynamics_epoch_N.jsonl")
        parser.add_argument("out", help="datacarto run folder to create (new, or without training_dynamics/)")
        parser.add_argument("--label-names", help="comma-separated label names")
        args = parser.parse_args(argv)
        names = args.label_names.split(",") if args.label_names else None
        folder = import_allenai(args.src, args.out, label_names=names)
        print(f"imported into {folder}")
    else:
        parser.description = "Write a run's dynamics in allenai/cartography's jsonl format."
        parser.add_argument("run", help="datacarto run folder")
        parser.add_argument("out", help="folder to write training_dynamics/dynamics_epoch_N.jsonl into")
        parser.add_argument("--split", default="train", help="which recorded split (default: train)")
        parser.add_argument("--overwrite", action="store_true",
                            help="replace an earlier export in OUT (refused without it)")
        args = parser.parse_args(argv)
        folder = export_allenai(args.run, args.out, split=args.split, overwrite=args.overwrite)
        print(f"exported to {folder}")
    return 0
