"""Tokens per sample for each connector and region encoder as the clip grows, next to the papers' own counts.

    python benchmarks/token_counts.py [--frames 4 8 16 32 64] [--out benchmarks/results/token_counts.json]

Counts come from RegionLMConfig (the numbers the processor expands placeholders to, tested against the processor's
output in tests), for two vision grids: the default model's (64 px / 8 = 8x8) and SigLIP-so400m at 384 px / 14
(27x27), the grid of the papers. A sample = one video + one `<region>` given on every frame (mask_pool's count
depends on the frames given) + the object list for object_tokens (8 objects assumed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from regionlm.model.config import CONNECTORS, REGION_ENCODERS, RegionLMConfig

GRIDS = {"default 64px/8": {"image_size": 64, "patch_size": 8},
         "siglip-384/14": {"image_size": 384, "patch_size": 14}}
# t_selector keeps Elysium's 108 tokens per frame on the paper grid, and the pool budget (16) on the default grid.
T_SELECTOR_KEEP = {"default 64px/8": 16, "siglip-384/14": 108}
PAPERS = [
    ("VideoRefer (STC, 16 frames)", "1,352 context + <= 4 per object"),
    ("Elysium (T-Selector)", "108 per frame"),
    ("Artemis (RoI)", "356 context + 5 per region"),
    ("Omni-RGPT (Token Mark)", "1 per region, independent of T"),
    ("VideoOrion", "context + 1 per object (<= 64)"),
]
NUM_OBJECTS = 8


def counts(frames: list[int]) -> list[dict]:
    rows = []
    for grid, vision in GRIDS.items():
        for connector in CONNECTORS:
            for encoder in REGION_ENCODERS:
                cfg = RegionLMConfig(connector=connector, region_encoder=encoder,
                                     t_selector_keep=T_SELECTOR_KEEP[grid],
                                     vision_config={"model_type": "siglip_vision_model", **vision})
                for t in frames:
                    context = cfg.num_context_tokens(t)
                    region = cfg.tokens_per_region(t)
                    objects = NUM_OBJECTS if cfg.uses_objects else 0
                    rows.append({"grid": grid, "connector": connector, "encoder": encoder, "frames": t,
                                 "context": context, "region": region, "objects": objects,
                                 "total": context + region + objects})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    ap.add_argument("--out", default="benchmarks/results/token_counts.json")
    args = ap.parse_args(argv)
    rows = counts(args.frames)
    print(f"{'grid':<16} {'connector':<11} {'encoder':<14} " + " ".join(f"T={t:<6}" for t in args.frames))
    for grid in GRIDS:
        for connector in CONNECTORS:
            for encoder in REGION_ENCODERS:
                sel = [r for r in rows if (r["grid"], r["connector"], r["encoder"]) == (grid, connector, encoder)]
                cells = " ".join(f"{r['context']}+{r['region'] + r['objects']:<{6 - len(str(r['context']))}}"
                                 for r in sel)
                print(f"{grid:<16} {connector:<11} {encoder:<14} {cells}")
    print("\n(context + region/object tokens). The papers:")
    for name, count in PAPERS:
        print(f"  {name:<30} {count}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "papers": dict(PAPERS)}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
