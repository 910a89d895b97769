"""The `regionlm` command. User errors print one line and exit with code 2; `--debug` shows the traceback."""

from __future__ import annotations

import argparse
import sys

from .errors import RegionLMError


# Each module registers its commands with ``add_parser(sub)``; listed in the order `regionlm --help` shows them.
COMMAND_MODULES = (
    "regionlm.world.cli",
    "regionlm.data.cli",
    "regionlm.objects.cli",
    "regionlm.ask_cli",
    "regionlm.train.cli",
    "regionlm.model.cli",
    "regionlm.eval.cli",
    "regionlm.demo",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="regionlm", description="Region-level video understanding")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RegionLMError as err:
        if args.debug:
            raise
        print(f"regionlm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("regionlm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
