"""``datacarto serve RUN``: the explorer of a run of any size, from a small local server.

``datacarto map`` writes one self-contained page, which holds a random sample above
``PAGE_MAX_POINTS`` examples; this command keeps the run in memory and gives the same page, which
asks the server for the rows of its view, search and filters over every row. The work is
:func:`datacarto.maps.serve.serve`; this command parses the arguments, says where the page is, opens
a browser (unless ``--no-open``) and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import DatacartoError


def _parser() -> argparse.ArgumentParser:
    from ..maps.serve import VIEW_CAP

    p = argparse.ArgumentParser(
        prog="datacarto serve",
        description="Serve the interactive data map of a run from this machine: the page of datacarto map, "
                    "with zoom, search and filters answered by a local server over every example (for runs "
                    "too large for one HTML file). See docs/maps.md.",
    )
    p.add_argument("run", help="training output folder (holding training_dynamics/)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8050, help="port (default 8050; 0: any free port)")
    p.add_argument("--split", default="train", help="which recorded split (default: train)")
    p.add_argument("--max-points", type=int, default=VIEW_CAP, metavar="N",
                   help=f"points the page holds at once: every point of the view up to N, else a random N "
                        f"(default {VIEW_CAP:,})")
    p.add_argument("--no-open", action="store_true", help="do not open a browser")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.max_points < 1:
        raise DatacartoError(f"--max-points must be at least 1, got {args.max_points}")
    from ..maps.serve import serve

    server = serve(args.run, split=args.split, host=args.host, port=args.port, cap=args.max_points)
    print(f"serving {args.run} ({server.run.n:,} examples) at {server.url} - Ctrl-C stops", flush=True)
    if not args.no_open:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.stop()
    return 0
