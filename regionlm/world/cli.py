"""`regionlm world ...` commands."""

from __future__ import annotations

import json
import time

from ..errors import RegionLMError
from .spec import SPLITS, WorldConfig


def parse_objects(text: str) -> tuple[int, int]:
    try:
        lo, _, hi = text.partition("-")
        lo, hi = int(lo), int(hi or lo)
    except ValueError:
        raise RegionLMError(f"--objects must look like MIN-MAX (e.g. 2-6), got {text!r}") from None
    return lo, hi


def add_parser(sub) -> None:
    world = sub.add_parser("world", help="RegionWorld: synthetic videos with exact ground truth")
    wsub = world.add_subparsers(dest="world_command", required=True)
    gen = wsub.add_parser("generate", help="write videos and one annotation file per task")
    gen.add_argument("out_dir")
    gen.add_argument("--split", choices=SPLITS, default="train")
    gen.add_argument("--num-videos", type=int, default=100)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--frames", type=int, default=WorldConfig.frames)
    gen.add_argument("--size", type=int, default=WorldConfig.size, help="frame side in pixels (32-256)")
    gen.add_argument("--objects", default=f"{WorldConfig.min_objects}-{WorldConfig.max_objects}",
                     help="objects per video, MIN-MAX")
    gen.add_argument("--no-videos", action="store_true", help="annotations only (no mp4 files)")
    gen.add_argument("--json", action="store_true", help="print a JSON summary")
    gen.set_defaults(func=run_generate)


def run_generate(args) -> int:
    from .generate import generate_split

    lo, hi = parse_objects(args.objects)
    cfg = WorldConfig(frames=args.frames, size=args.size, min_objects=lo, max_objects=hi)
    start = time.perf_counter()
    summary = generate_split(args.out_dir, args.split, args.num_videos, args.seed, cfg,
                             write_videos=not args.no_videos, progress=not args.json)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {args.num_videos} {args.split} videos to {summary['out_dir']} in {summary['seconds']} s")
        for name, n in summary["counts"].items():
            print(f"  {name:<20} {n} records")
        print(f"  region necessity: {summary['lookalike_differs']}/{summary['region_questions']} region questions "
              f"({100 * summary['region_necessity_rate']:.1f}%) have another answer for a look-alike object")
    return 0
