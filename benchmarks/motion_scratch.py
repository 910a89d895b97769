"""Why a RegionLM trained from scratch does not read its regions' velocity: small from-scratch runs, one change each.

Every arm trains the same small mask_pool model (region_geometry on, 2+2 layers, patches of 8) from random weights
on region descriptions only, for the same steps on the same data stream, then is measured on held-out
descriptions (the val split, seed 2, `regionlm eval --benchmark world-d`: CIDEr and the attributes named right)
and by the geometry probe (benchmarks/geometry_probe.py: how much the description loss rises when the velocity,
or the centre + size, inputs are shuffled between regions; ~0 means the input is not read). Besides the
attributes, the places the description says the object starts and ends in are checked against the reference.

Arms (ARMS): regions given as in the default config's training (first frame only 30%, every frame 35%, else the
key frame), then on every frame where they are seen (so a velocity is always measurable) with the geometry
embedding's initial scale (model.config.region_embedding_std) at 0.2 (the default), 0.5 and 1.0, and with the
trajectory token (model.config.region_trajectory: the region's whole path as one token of its own).

A trained arm (OUT/runs/ARM/final) is not trained again; a cut-off one resumes. Prints the table and writes
OUT/motion_scratch.json.

    python benchmarks/motion_scratch.py [--steps 4000] [--only every_frame,trajectory] [--limit 120]
        [--out benchmarks/results/motion_scratch]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import geometry_probe  # noqa: E402
from compare_encoders import run  # noqa: E402  (a `regionlm` command; its stdout, or exit with its last error)
from regionlm.data.io import atomic_write_text  # noqa: E402

BASE = {
    "model": {"config": {
        "region_encoder": "mask_pool", "region_geometry": True, "connector": "pool", "num_frames": 8,
        "vision_config": {"image_size": 64, "patch_size": 8, "hidden_size": 64, "intermediate_size": 256,
                          "num_hidden_layers": 2, "num_attention_heads": 2},
        "text_config": {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024,
                        "tie_word_embeddings": True}}},
    "tokenizer": {"path": str(REPO / "regionlm" / "assets" / "default_model")},
    "data": {"source": "world", "split": "train", "seed": 0, "num_frames": 8, "first_frame_only": 0.0,
             "multi_frame_prob": 1.0, "examples_per_video": 4, "tasks": {"region_caption": 1},
             "world": {"size": 64, "frames": 16}, "workers": 1},
    "stages": [{"name": "joint", "steps": 4000, "lr": 1.0e-3, "warmup": 100, "min_lr_ratio": 0.05,
                "trainable": ["vision_tower", "connector", "region_encoder", "language_model"]}],
    "batch_size": 16, "seed": 0, "checkpoint_every": 250, "keep_checkpoints": 1, "log_every": 25,
    "cpu_threads": 2,
}

# name -> (data overrides, model.config overrides, what it stands for)
ARMS = {
    "mixed": ({"first_frame_only": 0.3, "multi_frame_prob": 0.5}, {},
              "regions as the default config trains them (velocity measurable in 35%)"),
    "every_frame": ({}, {}, "every region on every frame where it is seen"),
    "std0.5": ({}, {"region_embedding_std": 0.5}, "the same, geometry embedding initialised 2.5x larger"),
    "std1": ({}, {"region_embedding_std": 1.0}, "the same, geometry embedding initialised 5x larger"),
    "trajectory": ({}, {"region_trajectory": True}, "every frame, plus a trajectory token of its own"),
}

VAL = {"split": "val", "seed": 2, "videos": 60}
_PLACE = r"((?:in|at|on) the [a-z ]+?)"
PHRASES = {  # what a description says -> the words compared with the reference's
    "start": re.compile(rf"(?:starts|stays still) {_PLACE}(?: and|\.)"),
    "end": re.compile(rf"ends {_PLACE}\."),
    "motion": re.compile(r"(?:and moves ([a-z ]+?)\.|(stays still))"),
}


def arm_config(name: str, steps: int, arms: dict = ARMS) -> dict:
    """BASE with arm ``name``'s data and model.config overrides (from ``arms``), trained ``steps`` steps."""
    data, model, _ = arms[name]
    cfg = copy.deepcopy(BASE)
    cfg["data"].update(data)
    cfg["model"]["config"].update(model)
    cfg["stages"][0]["steps"] = steps
    cfg["stages"][0]["warmup"] = min(cfg["stages"][0]["warmup"], steps)
    return cfg


def arm_parser(doc: str, arms: dict, name: str, seeded: bool = True) -> argparse.ArgumentParser:
    """The options every from-scratch arm script shares: --steps, --only, --seed (if ``seeded``) and --out
    (default benchmarks/results/NAME); a script adds its own."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4000, help="training steps per arm (batches of 16)")
    ap.add_argument("--only", help=f"comma-separated arms (default: all of {', '.join(arms)})")
    if seeded:
        ap.add_argument("--seed", type=int, default=0, help="the arms' initial weights (the data stream stays the "
                                                           "same); runs of seed N > 0 go to OUT/runs/ARM-sN")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / name))
    return ap


def chosen_arms(only, arms: dict) -> list:
    """The arms ``--only`` names (all of ``arms`` without it); exits with code 2 naming any unknown one."""
    names = only.split(",") if only else list(arms)
    unknown = [n for n in names if n not in arms]
    if unknown:
        print(f"--only: unknown arm(s) {', '.join(unknown)}; choose from {', '.join(arms)}", file=sys.stderr)
        raise SystemExit(2)
    return names


def seeded_arm(name: str, steps: int, arms: dict, seed: int, out: Path) -> tuple[dict, Path]:
    """Arm ``name``'s config with initial weights from ``seed``, and its run folder (OUT/runs/ARM, or
    OUT/runs/ARM-sN for a seed N > 0)."""
    cfg = arm_config(name, steps, arms)
    cfg["seed"] = seed
    return cfg, out / "runs" / (f"{name}-s{seed}" if seed else name)


def held_out_data(out: Path) -> Path:
    """The held-out videos (VAL) under ``out``, generated the first time."""
    data = out / "data" / f"{VAL['split']}-s{VAL['seed']}"
    if not (data / "world.json").exists():
        run(["world", "generate", str(data), "--split", VAL["split"], "--seed", str(VAL["seed"]),
             "--num-videos", str(VAL["videos"])], "held-out videos")
    return data


def train_arm(name: str, cfg: dict, run_dir: Path) -> None:
    """Train one arm into ``run_dir`` (its config written there); skipped when trained, resumed when cut off."""
    if (run_dir / "final").exists():
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = run_dir / "config.yaml"
    atomic_write_text(cfg_path, yaml.safe_dump(cfg, sort_keys=False))
    resume = ["--resume"] if (run_dir / "checkpoints").exists() else []
    print(f"[{name}] training {sum(st['steps'] for st in cfg['stages'])} steps ...", file=sys.stderr, flush=True)
    run(["train", "--config", str(cfg_path), "--out", str(run_dir), "--json", *resume], f"{name}: train")


def said(text: str, what: str):
    """The words a description uses for ``what`` (start / end / motion), or None if it does not say."""
    m = PHRASES[what].search(text)
    if m is None:
        return None
    return next(g for g in m.groups() if g is not None)


def phrase_accuracy(predictions: list, references: dict) -> dict:
    """Per phrase: the share (%) of descriptions whose reference says it where the prediction says the same."""
    out = {}
    for what in PHRASES:
        pairs = [(said(references[p["id"]], what), said(p["prediction"], what)) for p in predictions]
        pairs = [(r, p) for r, p in pairs if r is not None]
        out[what] = round(100.0 * sum(r == p for r, p in pairs) / len(pairs), 1) if pairs else None
    return out


def description_scores(name: str, run_dir: Path, data: Path, limit: int) -> dict:
    """One arm's held-out descriptions (`regionlm eval --benchmark world-d`, cached in run_dir/eval): CIDEr, the
    attributes named right and the start / end places said right."""
    references = {d["id"]: d["caption"] for d in json.loads((data / "region_caption.json").read_text())}
    eval_dir = run_dir / "eval"
    result = json.loads(run(["eval", "--benchmark", "world-d", "--data", str(data), "--model", str(run_dir / "final"),
                             "--out", str(eval_dir), "--limit", str(limit), "--json"], f"{name}: eval"))
    metrics = result.get("metrics", result)
    predictions = [json.loads(line) for line in (eval_dir / "predictions.jsonl").read_text().splitlines()]
    return {**{k: round(metrics[k], 1) for k in ("cider", "attr_colour", "attr_shape", "attr_size", "attr_motion",
                                                  "attributes")},
            **{f"said_{k}": v for k, v in phrase_accuracy(predictions, references).items()},
            "descriptions": len(predictions)}


def main(argv=None) -> int:
    ap = arm_parser(__doc__, ARMS, "motion_scratch", seeded=False)
    ap.add_argument("--limit", type=int, default=120, help="held-out descriptions per arm")
    args = ap.parse_args(argv)
    names = chosen_arms(args.only, ARMS)
    out = Path(args.out)
    data = held_out_data(out)

    rows = {}
    for name in names:
        start = time.time()
        run_dir = out / "runs" / name
        train_arm(name, arm_config(name, args.steps), run_dir)
        print(f"[{name}] probe and held-out descriptions ...", file=sys.stderr, flush=True)
        geometry_probe.main(["--model", str(run_dir / "final"), "--batches", "8", "--threads", "2",
                             "--out", str(run_dir / "probe")])
        probe = json.loads((run_dir / "probe" / "geometry_probe.json").read_text())["lm_loss"]
        rows[name] = {
            "what": ARMS[name][2],
            "velocity_shuffled": round(probe["velocity shuffled"] - probe["as given"], 4),
            "centre_size_shuffled": round(probe["centre + size shuffled"] - probe["as given"], 4),
            **description_scores(name, run_dir, data, args.limit),
            "seconds": round(time.time() - start, 1),
        }
    cols = ["velocity_shuffled", "centre_size_shuffled", "cider", "attr_colour", "attr_shape", "attr_size",
            "attr_motion", "said_start", "said_end"]
    table = ["| arm | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    table += [f"| {n} | " + " | ".join(f"{r[c]:+.3f}" if c.endswith("shuffled") else str(r[c]) for c in cols) + " |"
              for n, r in rows.items()]
    print("\n".join(table))
    result = {"benchmark": "motion_scratch", "steps": args.steps, "limit": args.limit, "val": VAL, "arms": rows}
    atomic_write_text(out / "motion_scratch.json", json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
