"""Does a model read the geometry its mask_pool region tokens carry? (config.region_geometry / region_silhouette)

Teacher-forced LM loss of region descriptions (RegionWorld, a seed no training run streams, every region given on
every frame where it is seen, so every velocity is measured) with the embeddings' inputs as they are, then with
one group of them shuffled between the regions of the batch: velocity, centre + size, silhouette. A model that
reads a group loses when it is shuffled; one that ignores it does not move. For scale, the last row gives every
description the masks of the next sample's regions (appearance and geometry both wrong).

    python benchmarks/geometry_probe.py --model runs/geometry_finetune/final [--batches 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from regionlm.data.io import atomic_write_text  # noqa: E402

SEED = 5  # world seed of the probe's videos: training streams seeds 0 and 3, the test split is seed 1


def shuffled(part: slice):
    """A function that permutes ``part`` of the last dimension between regions (dimension 0 after flattening)."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).clone()
        g = torch.Generator().manual_seed(0)
        flat[:, part] = flat[torch.randperm(flat.shape[0], generator=g)][:, part]
        return flat.reshape(x.shape)
    return fn


def mean_loss(model, batches) -> float:
    with torch.no_grad():
        return sum(float(model(**b).lm_loss) for b in batches) / len(batches)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a RegionLM folder with region_geometry and/or region_silhouette")
    ap.add_argument("--batches", type=int, default=4, help="batches of 16 descriptions")
    ap.add_argument("--out", default="benchmarks/results/geometry_probe")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from transformers import AutoTokenizer

    import regionlm.model.region.mask_pool as mask_pool
    from regionlm.model import RegionLMForConditionalGeneration
    from regionlm.model.processing import RegionLMProcessor
    from regionlm.model.world_examples import ExampleOptions, WorldTaskStream
    from regionlm.world import WorldConfig

    model = RegionLMForConditionalGeneration.from_pretrained(args.model).eval()
    cfg = model.config
    if not (cfg.region_geometry or cfg.region_silhouette):
        print(f"--model: {args.model} has neither region_geometry nor region_silhouette", file=sys.stderr)
        return 2
    processor = RegionLMProcessor(AutoTokenizer.from_pretrained(args.model), cfg)
    options = replace(ExampleOptions(), multi_frame_prob=1.0, first_frame_only=0.0, box_prompt_prob=0.0,
                      with_objects=False)
    stream = iter(WorldTaskStream(WorldConfig(size=64, frames=16), "train", SEED, {"region_caption": 1},
                                  cfg.num_frames, examples_per_video=4, options=options))
    batches = [processor([next(stream) for _ in range(16)], train=True) for _ in range(args.batches)]

    geometry, silhouette = mask_pool.region_geometry, mask_pool.region_silhouette
    modes = {"as given": (None, None)}
    if cfg.region_geometry:
        modes["velocity shuffled"] = ("geometry", shuffled(slice(4, 7)))
        modes["centre + size shuffled"] = ("geometry", shuffled(slice(0, 4)))
    if cfg.region_silhouette:
        modes["silhouette shuffled"] = ("silhouette", shuffled(slice(None)))
    rows, start = {}, time.time()
    try:
        for name, (which, fn) in modes.items():
            mask_pool.region_geometry = (lambda m, g: fn(geometry(m, g))) if which == "geometry" else geometry
            mask_pool.region_silhouette = (lambda m, g: fn(silhouette(m, g))) if which == "silhouette" \
                else silhouette
            rows[name] = mean_loss(model, batches)
            print(f"  {name}: {rows[name]:.4f}", file=sys.stderr)
    finally:
        mask_pool.region_geometry, mask_pool.region_silhouette = geometry, silhouette
    # the masks move, the given frames stay (they set how many tokens each <region> is written as)
    rolled = [{**b, "region_masks": b["region_masks"].roll(1, 0)} for b in batches]
    rows["regions of another sample"] = mean_loss(model, rolled)

    base = rows["as given"]
    print(f"| inputs of the embeddings | description LM loss | change |\n|---|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.4f} | {value - base:+.4f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "geometry_probe", "model": args.model, "seed": SEED, "descriptions": 16 * args.batches,
              "lm_loss": rows, "seconds": round(time.time() - start, 1)}
    atomic_write_text(out / "geometry_probe.json", json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
