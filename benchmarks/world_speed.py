"""RegionWorld generation speed: videos per second on one core at the default size (target: >= 20/s).

Measures the whole per-video work (scene, rendering, every annotation) with and without mp4 encoding, and the
region-necessity rate of the generated questions. Prints a table and writes JSON.
    python benchmarks/world_speed.py [--videos 200] [--out benchmarks/results/world_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from regionlm.world import WorldConfig, generate_split


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--out", default="benchmarks/results/world_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:  # one core, as the target says
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    rows = []
    for split in ("train", "holdout"):
        for videos in (False, True):
            cfg = WorldConfig(size=args.size)
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                summary = generate_split(tmp, split, args.videos, 1234, cfg, write_videos=videos, progress=False)
                secs = time.perf_counter() - start
            rows.append({"split": split, "mp4": videos, "videos": args.videos, "size": args.size,
                         "seconds": round(secs, 3), "videos_per_s": round(args.videos / secs, 2),
                         "region_questions": summary["region_questions"],
                         "region_necessity_rate": summary["region_necessity_rate"]})
    print(f"{'split':<8} {'mp4':<5} {'videos':>6} {'size':>5} {'seconds':>8} {'videos/s':>9} {'questions':>9} "
          f"{'necessity':>9}")
    for r in rows:
        print(f"{r['split']:<8} {str(r['mp4']):<5} {r['videos']:>6} {r['size']:>5} {r['seconds']:>8.2f} "
              f"{r['videos_per_s']:>9.1f} {r['region_questions']:>9} {100 * r['region_necessity_rate']:>8.1f}%")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "world_speed", "target_videos_per_s": 20, "rows": rows,
                               "python": sys.version.split()[0], "machine": platform.machine(),
                               "cores_used": 1}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
