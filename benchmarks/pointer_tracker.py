"""The pointer tracker (regionlm.model.pointer): fit its head on a model's frozen features, score it on world-sot.

Fits the head on the world-sot sequences of RegionWorld videos no training run uses (split train, seed 5), scores
it as a tracker on the validation videos (seed 2, as tracking_scratch and tracking_probe) with the benchmark's own
scoring, beside repeating the first box. Variants of the head (``--variants``, comma-separated) are compared on the
same features; ``--save`` writes the first variant's head into the model folder (``pointer_head.safetensors``),
where ``RegionLMSystem(sot_mode="point")`` (``regionlm eval --sot-mode point``, ``regionlm track``) finds it.

    python benchmarks/pointer_tracker.py [--model regionlm/assets/default_model] [--videos 200] [--steps 400]
        [--variants shipped,centre-0.1,no-window,teacher] [--sot 222] [--save] [--out benchmarks/results/pointer]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from motion_scratch import VAL, held_out_data, run  # noqa: E402
from tracking_probe import sot_scores  # noqa: E402
from regionlm.data.io import atomic_write_text  # noqa: E402
from regionlm.model.pointer import PointerConfig  # noqa: E402
from regionlm.train.config import PointerSpec  # noqa: E402

# the shipped head's recipe: a seed no training run streams (training: 0 and 3, test 1, val 2)
FIT = {"split": PointerSpec.split, "seed": PointerSpec.seed}
# name -> changes to PointerConfig's defaults ("shipped": the head shipped with the default model; "teacher":
# fitted from the truth on the frames before, and every place a mean over the whole grid; the variants after
# "shipped" weigh the centre's pixel error 0.1 beside the cross-entropy, as first measured)
VARIANTS = {
    "shipped": {},
    "centre-0.1": {"centre_weight": 0.1},
    "no-window": {"centre_weight": 0.1, "window": 0, "smoothing": 0.0},
    "teacher": {"centre_weight": 0.1, "training": "teacher", "window": 0, "smoothing": 0.0},
    "teacher-last-prior": {"centre_weight": 0.1, "training": "teacher", "window": 0, "smoothing": 0.0,
                           "prior": "last"},
    "teacher-no-template": {"centre_weight": 0.1, "training": "teacher", "window": 0, "smoothing": 0.0,
                            "template": False},
    "teacher-ce-only": {"centre_weight": 0.0, "training": "teacher", "window": 0, "smoothing": 0.0},
    "stitched": {"centre_weight": 0.1, "stitch": True, "window": 6},
}


def fit_data(out: Path, videos: int) -> Path:
    """RegionWorld videos to fit the head on (FIT), generated the first time."""
    data = out / "data" / f"{FIT['split']}-s{FIT['seed']}-{videos}"
    if not (data / "world.json").exists():
        run(["world", "generate", str(data), "--split", FIT["split"], "--seed", str(FIT["seed"]),
             "--num-videos", str(videos)], "fit videos")
    return data


def tracks_of(folder: Path, limit: int = 0) -> list:
    from regionlm.eval.benchmarks import BenchmarkOptions, get_benchmark

    items = get_benchmark("world-sot")(BenchmarkOptions(data=folder)).load()
    return items[:limit] if limit else items


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "regionlm" / "assets" / "default_model"))
    ap.add_argument("--videos", type=int, default=PointerSpec.videos,
                    help=f"RegionWorld videos to fit on ({FIT['split']} split, seed {FIT['seed']})")
    ap.add_argument("--steps", type=int, default=PointerSpec.steps)
    ap.add_argument("--variants", default="shipped", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--sot", type=int, default=222, help="world-sot sequences to score on (val, seed 2)")
    ap.add_argument("--save", action="store_true", help="write the first variant's head into --model")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "pointer"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        ap.error(f"--variants: unknown {unknown or '(none given)'}; known: {', '.join(VARIANTS)}")

    import torch

    from regionlm.model import RegionLMForConditionalGeneration
    from regionlm.model.pointer import point_track, save_pointer
    from regionlm.model.pointer_fit import fit_pointer, sequence_features

    torch.set_num_threads(args.threads)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    start = time.time()
    out = Path(args.out)
    model = RegionLMForConditionalGeneration.from_pretrained(args.model).eval()
    tracks = tracks_of(fit_data(out, args.videos))
    heads, fit_seconds, data = {}, {}, {}
    for name in names:
        config = replace(PointerConfig(), **VARIANTS[name])
        if config.stitch not in data:  # the features once per grid (the stitched one is 4x the memory)
            data = {config.stitch: sequence_features(model, tracks, stitch=config.stitch, log=log)}
            log(f"fit set: {tuple(data[config.stitch].x.shape)} ({time.time() - start:.0f} s)")
        t0 = time.time()
        heads[name] = fit_pointer(data[config.stitch], config, steps=args.steps, log=log)
        fit_seconds[name] = round(time.time() - t0, 1)
    trackers = {f"pointer ({name})": (lambda frames, box, h=h: point_track(model, h, frames, box))
                for name, h in heads.items()}
    t0 = time.time()
    sot = sot_scores(trackers, held_out_data(out), args.sot, log)  # beside "copy the first box"
    sot_seconds = round(time.time() - t0, 1)
    keys = list(next(iter(sot.values())))
    print(f"world-sot ({VAL['split']} seed {VAL['seed']}, {args.sot} sequences), head fitted on "
          f"{len(tracks)} sequences of {FIT['split']} seed {FIT['seed']}:")
    print("| tracker | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for name, r in sot.items():
        print(f"| {name} | " + " | ".join(str(r[k]) for k in keys) + " |")
    if args.save:
        path = save_pointer(heads[names[0]], args.model)
        log(f"wrote {path}")
    result = {"benchmark": "pointer_tracker", "model": args.model, "fit": {**FIT, "videos": args.videos,
              "sequences": len(tracks)}, "steps": args.steps,
              "variants": {n: asdict(replace(PointerConfig(), **VARIANTS[n])) for n in names},
              "fit_seconds": fit_seconds, "world_sot": sot, "sot_sequences": args.sot,
              "sot_seconds_all_trackers": sot_seconds, "seconds": round(time.time() - start, 1)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "pointer_tracker.json", json.dumps(result, indent=2) + "\n")
    log(f"wrote {out / 'pointer_tracker.json'} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
