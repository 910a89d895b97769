"""`regionlm data ...` commands: validate a dataset file and list the known formats.

`regionlm data validate FILE --format NAME [--errors raise|skip] [--num-frames N] [--json]`
exit codes: 0 all records good; 2 a bad record in raise mode (or an unusable file); 1 in skip mode when
records were skipped (so scripts notice them; the summary lists every one).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys

from regionlm.data.registry import FORMATS, get_loader
from regionlm.data.result import ERROR_MODES
from regionlm.errors import DataFormatError, RegionLMError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the `data` command group on an argparse subparsers object."""
    import regionlm.data  # noqa: F401  (fills FORMATS)

    parser = subparsers.add_parser("data", help="validate and inspect dataset files")
    sub = parser.add_subparsers(dest="data_command", metavar="COMMAND")
    sub.required = True

    v = sub.add_parser("validate", help="check every record of a dataset file against its format",
                       description="Check every record of a file (or folder, for sot/vot/davis) against a format.")
    v.add_argument("file", help="the dataset file or folder")
    v.add_argument("--format", required=True, choices=sorted(FORMATS), help="the dataset format")
    v.add_argument("--errors", choices=ERROR_MODES, default="raise",
                   help="raise: stop at the first bad record (exit 2); skip: report every bad record (exit 1 if any)")
    v.add_argument("--num-frames", type=int, default=None,
                   help="frame count of the videos: annotated frame indices must be below it")
    v.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    v.set_defaults(func=run_validate)

    f = sub.add_parser("formats", help="list the known dataset formats")
    f.set_defaults(func=run_formats)
    return parser


def run_validate(args) -> int:
    loader = get_loader(args.format)
    options = {"errors": args.errors}
    if args.num_frames is not None:
        if "num_frames" not in inspect.signature(loader).parameters:
            raise RegionLMError(f"--num-frames does not apply to format {args.format!r}")
        if args.num_frames <= 0:
            raise RegionLMError(f"--num-frames must be positive, got {args.num_frames}")
        options["num_frames"] = args.num_frames
    try:
        result = loader(args.file, **options)
    except DataFormatError as err:
        if args.json:
            print(json.dumps({"file": args.file, "format": args.format, "valid": False,
                              "error": {"file": err.file, "record": err.record, "field": err.field,
                                        "reason": err.reason, "message": str(err)}}, ensure_ascii=False))
        else:
            print(f"invalid: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"file": args.file, "format": args.format, "valid": not result.skipped,
                          **result.to_dict()}, ensure_ascii=False, default=str))
    else:
        print(f"{args.file} ({args.format}): {result.summary()}")
    return 1 if result.skipped else 0


def run_formats(args) -> int:
    for name in sorted(FORMATS):
        doc = (FORMATS[name].__doc__ or "").strip().splitlines()
        print(f"{name:18s} {doc[0] if doc else ''}")
    return 0
