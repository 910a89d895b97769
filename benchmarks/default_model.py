"""The default model's quality bars: `regionlm eval` on held-out RegionWorld splits, one table against the bars.

Generates (once, cached under --data-dir) a test split and a compositional hold-out split with a seed never used
in training (training streams the train split), then evaluates the model on:
  world-q (test)     region multiple choice: overall >= 85, each of the five types >= 70, region_swap >= 80
  world-q (holdout)  the same questions on unseen colour-shape pairs: overall >= 80
  world-sot          single-object tracking from a first-frame box: success AUC >= 70 (with the model folder's
                     pointer head when it has one, `--sot-mode auto`, its boxes outlined, `--outline on`;
                     world-sot-generate: boxes written as text; world-sot-pointed: the pointed boxes, not outlined)
  world-rsot         referring tracking from an expression: AUC >= 60 (with the folder's refer and pointer heads
                     when it has them, `--rsot-mode auto`; world-rsot-generate: boxes written as text;
                     world-rsot-pointed: not outlined)
  world-d            region descriptions: CIDEr >= 100, attributes (colour, shape, size, motion) right >= 90
  world-vqa          video-level questions: >= 85
  world-rsot-ground  the same, the object pipeline tracking every object and the model picking the named one
Multiple choice is answered by ranking the options by the model's likelihood (`--choice-mode rank`) and
descriptions with 3 beams (`--caption-beams 3`) and the region followed to every frame by the classical tracker
(`--region-propagation classical`), never writing a span three times in a row (`--caption-loop-guard on`), the
defaults of `regionlm eval`; world-q-generate, world-d-greedy and world-vqa-generate ask the same with greedy
decoding, world-d-keyframe with the region on its key frame only and world-d-noguard without the loop guard, for
reference (no bar).
Each run's full results (results.json, report.md, plots, predictions cache) stay under --out/<name>; the table is
printed and written to --out/default_model.json. A --model folder without a pointer and a refer head fitted on its
weights (a model just trained) gets them first, fitted as the shipped ones were (train.config.PointerSpec:
RegionWorld videos of a seed no training run streams; --no-fit-pointer: world-sot and world-rsot then have the
model write its boxes).

    python benchmarks/default_model.py [--model DIR] [--videos 200] [--limit N] [--only world-q,world-sot]
                                       [--out benchmarks/results/default_model] [--before OLD.json]
                                       [--doc docs/RESULTS.md] [--no-fit-pointer]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from regionlm.data.io import atomic_write_text  # noqa: E402

SEED = 1  # test/holdout videos: split streams differ from train's, and seed 1 is never a training seed
# (name, benchmark, split, [(metric, bar)]): a None metric name means "every question type" of world-q; a None
# bar, a number shown for reading the others (no bar of its own)
RUNS = [
    ("world-q", "world-q", "test", [("overall", 85), (None, 70), ("region_swap", 80)]),
    ("world-q-holdout", "world-q", "holdout", [("overall", 80)]),
    ("world-sot", "world-sot", "test", [("auc", 70)]),
    ("world-sot-generate", "world-sot", "test", [("auc", None)]),
    ("world-sot-pointed", "world-sot", "test", [("auc", None)]),
    ("world-rsot", "world-rsot", "test", [("auc", 60)]),
    ("world-rsot-generate", "world-rsot", "test", [("auc", None)]),
    ("world-rsot-pointed", "world-rsot", "test", [("auc", None)]),
    ("world-d", "world-d", "test", [("cider", 100), ("attributes", 90), ("attr_colour", None), ("attr_shape", None),
                                    ("attr_size", None), ("attr_motion", None)]),
    ("world-vqa", "world-vqa", "test", [("overall", 85)]),
    ("world-rsot-ground", "world-rsot", "test", [("auc", 60)]),
    ("world-q-generate", "world-q", "test", [("overall", None), ("region_swap", None)]),
    ("world-d-greedy", "world-d", "test", [("cider", None), ("attributes", None)]),
    ("world-d-keyframe", "world-d", "test", [("cider", None), ("attributes", None), ("attr_motion", None)]),
    ("world-d-noguard", "world-d", "test", [("cider", None), ("bleu4", None), ("attributes", None)]),
    ("world-vqa-generate", "world-vqa", "test", [("overall", None)]),
]
EXTRA_ARGS = {"world-q-generate": ["--choice-mode", "generate"], "world-rsot-ground": ["--rsot-mode", "ground"],
              "world-sot-generate": ["--sot-mode", "generate"], "world-rsot-generate": ["--rsot-mode", "generate"],
              "world-d-greedy": ["--caption-beams", "1"], "world-vqa-generate": ["--choice-mode", "generate"],
              "world-d-keyframe": ["--region-propagation", "off"],
              "world-d-noguard": ["--caption-loop-guard", "off"], "world-sot-pointed": ["--outline", "off"],
              "world-rsot-pointed": ["--outline", "off"]}
NOT_TYPES = {"overall", "region_swap"}


def ensure_split(folder: Path, split: str, videos: int, seed: int = SEED) -> Path:
    path = folder / f"{split}-{videos}-seed{seed}"
    if not (path / "ground_truth.json").is_file():
        print(f"generating the {split} split ({videos} videos, seed {seed}) -> {path}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "regionlm.cli", "world", "generate", str(path), "--split", split,
                        "--num-videos", str(videos), "--seed", str(seed), "--json"], check=True,
                       stdout=subprocess.DEVNULL)
    return path


def ensure_pointer(model: str) -> bool:
    """Fit ``model``'s pointer and refer heads when it lacks one fitted on its weights, as training does
    (PointerSpec); True when they were fitted."""
    from regionlm.model.inference import load_model
    from regionlm.model.pointer import StalePointer, load_pointer
    from regionlm.model.pointer_fit import fit_world_pointer
    from regionlm.model.refer import load_refer
    from regionlm.train.config import PointerSpec

    try:
        if load_pointer(model) is not None and load_refer(model) is not None:
            return False
    except StalePointer:
        pass
    spec = PointerSpec()
    print(f"{model} lacks a pointer or refer head fitted on its weights: fitting them ({spec})", file=sys.stderr)
    fit_world_pointer(load_model(model)[0], model, spec.videos, spec.split, spec.seed, spec.steps,
                      log=lambda msg: print(msg, file=sys.stderr, flush=True), refer_steps=spec.refer_steps)
    return True


def run_eval(name: str, bench: str, data: Path, model, out: Path, limit) -> dict:
    cmd = [sys.executable, "-m", "regionlm.cli", "eval", "--benchmark", bench, "--data", str(data),
           "--out", str(out / name), "--json"] + EXTRA_ARGS.get(name, [])
    if model:
        cmd += ["--model", str(model)]
    if limit:
        cmd += ["--limit", str(limit)]
    print(f"{name}: {' '.join(cmd[2:])}", file=sys.stderr)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: regionlm eval failed: {proc.stderr.strip().splitlines()[-1:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def check_bars(name: str, metrics: dict, bars: list) -> list[dict]:
    rows = []
    for metric, bar in bars:
        keys = [metric] if metric else sorted(k for k in metrics if k not in NOT_TYPES)
        for k in keys:
            value = metrics.get(k)
            rows.append({"run": name, "metric": k, "value": None if value is None else round(float(value), 4),
                         "bar": bar, "met": None if bar is None else (value is not None and value >= bar)})
    return rows


def table_cells(row: dict, before: dict) -> list[str]:
    """One row of the bars table as text: run, metric, [before,] value, bar, met (yes / NO / - without a bar)."""
    num = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    was = [num(before.get((row["run"], row["metric"])))] if before else []
    met = "-" if row["met"] is None else ("yes" if row["met"] else "NO")
    return [row["run"], row["metric"], *was, num(row["value"]), num(row["bar"]), met]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a RegionLM folder (default: the shipped default model)")
    ap.add_argument("--videos", type=int, default=200, help="videos per held-out split (default 200)")
    ap.add_argument("--limit", type=int, help="evaluate the first N samples of each benchmark only")
    ap.add_argument("--only", help="comma-separated run names (default: all)")
    ap.add_argument("--data-dir", default=str(REPO / "runs" / "data"), help="where the splits are generated")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "default_model"))
    ap.add_argument("--before", help="an earlier run's default_model.json: its values become a 'before' column")
    ap.add_argument("--doc", help="a Markdown file to put the table in (between <!-- default_model:start --> and "
                                  "<!-- default_model:end -->)")
    ap.add_argument("--no-fit-pointer", action="store_true",
                    help="do not fit a pointer head for a --model folder that has none fitted on its weights")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [r for r in RUNS if not args.only or r[0] in args.only.split(",")]
    rows, results = [], {}
    fitted = False
    if args.model and not args.no_fit_pointer and any(r[1] in ("world-sot", "world-rsot") for r in runs):
        fitted = ensure_pointer(args.model)
    for name, bench, split, bars in runs:
        data = ensure_split(Path(args.data_dir), split, args.videos)
        res = run_eval(name, bench, data, args.model, out, args.limit)
        results[name] = res
        rows += check_bars(name, res["metrics"], bars)

    before = {}
    if args.before:
        old = json.loads(Path(args.before).read_text())
        before = {(n, k): round(float(v), 4) for n, r in old["runs"].items() for k, v in r["metrics"].items()
                  if isinstance(v, (int, float))}
    cells = [table_cells(r, before) for r in rows]
    head = ["run", "metric"] + (["before"] if before else []) + ["value", "bar", "met"]
    widths = [16, 22] + [7] * (len(head) - 4) + [5, 4]
    for line in [head] + cells:
        print(" ".join(f"{c:<{w}}" if i < 2 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(line, widths))))
    for name, res in results.items():
        print(f"{name}: {res['num_samples']} samples in {res['seconds']} s")
    report = {"benchmark": "default_model", "model": args.model or "shipped default", "videos": args.videos,
              "limit": args.limit, "seed": SEED, "threads": os.cpu_count(), "machine": platform.machine(),
              "bars": rows, "all_met": all(r["met"] for r in rows if r["met"] is not None),
              "before": args.before, "pointer_fitted_here": fitted,
              "runs": {n: {"metrics": r["metrics"], "num_samples": r["num_samples"], "seconds": r["seconds"]}
                       for n, r in results.items()}}
    atomic_write_text(out / "default_model.json", json.dumps(report, indent=2))
    print(f"wrote {out / 'default_model.json'}")
    if args.doc:
        from compare_encoders import put_in_doc

        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c[:-1] + ["**no**" if c[-1] == "NO" else c[-1]]) + " |" for c in cells]
        samples = ", ".join(f"{n} {r['num_samples']}" for n, r in results.items())
        lines.append(f"\nSamples: {samples} (held-out seed {SEED}, {args.videos} videos per split"
                     f"{'' if not args.limit else f', first {args.limit} samples each'}).")
        put_in_doc(Path(args.doc), "\n".join(lines), "default_model")
        print(f"table written into {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
