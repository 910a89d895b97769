"""The `regionlm` command. User errors print one line and exit with code 2; `--debug` shows the traceback."""

from __future__ import annotations

import argparse
import sys

from .errors import RegionLMError


def build_parser() -> argparse.ArgumentParser:
    from .data import cli as data_cli
    from .eval import cli as eval_cli
    from .world import cli as world_cli
    from . import demo

    parser = argparse.ArgumentParser(prog="regionlm", description="Region-level video understanding")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    world_cli.add_parser(sub)
    data_cli.add_parser(sub)
    eval_cli.add_parser(sub)
    demo.add_parser(sub)
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
