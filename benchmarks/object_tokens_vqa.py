"""Do object tokens help video-level questions (VideoOrion)? Small from-scratch runs, with the object pipeline in
the loop.

The encoder comparison (benchmarks/compare_encoders.py) found `object_tokens` 3.5 points worse than `mask_pool` on
video questions, but it evaluated the object-token model with the prompt's own regions as its object list: a video
question has no region, so the model trained with every object of the video listed answered with none. VideoOrion
lists the objects its detect-segment-track pipeline finds. Here two arms of the same small model
(motion_scratch.BASE without the geometry embedding) train from random weights on the same stream of video
questions and region questions (1:1), one with `mask_pool`, one with `object_tokens` (every object's true masks
listed in training, as world_examples attaches them), and `regionlm eval --benchmark world-vqa` scores them on the
held-out videos (val split, seed 2, 60 videos, 300 questions) with the object list taken each way
(`--objects`): ``pipeline`` (the classical detect-segment-track pipeline on the clip's frames: VideoOrion's
split of labour, what a user gets), ``truth`` (the objects' true masks: the pipeline's upper bound) and
``regions`` (the prompt's regions only: how the comparison scored it). Per question type (counting objects, by
colour, by shape, collisions; yes/no events) and paired against mask_pool.

A trained arm (OUT/runs/ARM/final) is not trained again and a scored one is not scored again (the eval caches).
Prints the table and writes OUT/object_tokens_vqa.json.

    python benchmarks/object_tokens_vqa.py [--steps 4000] [--only pool,objects] [--seed 0]
        [--out benchmarks/results/object_tokens_vqa]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_encoders import paired_difference, run  # noqa: E402
from motion_scratch import arm_parser, chosen_arms, held_out_data, seeded_arm, train_arm  # noqa: E402
from regionlm.data.io import atomic_write_text  # noqa: E402

DATA = {"tasks": {"video_qa": 1, "region_qa": 1}, "first_frame_only": 0.3, "multi_frame_prob": 0.5}
# name -> (data overrides, model.config overrides, what it stands for)
ARMS = {
    "pool": (DATA, {"region_encoder": "mask_pool", "region_geometry": False}, "VideoRefer mask pooling"),
    "objects": (DATA, {"region_encoder": "object_tokens", "region_geometry": False},
                "VideoOrion object tokens, every object listed"),
    "pool_objects": (DATA, {"region_encoder": "mask_pool", "region_geometry": False, "object_list": True},
                     "mask pooling, every object listed as one pooled token (object_list)"),
}
# how each arm is scored ("none": it lists no objects)
OBJECT_LISTS = {"pool": ("none",), "objects": ("pipeline", "truth", "regions"), "pool_objects": ("pipeline", "truth")}
KINDS = ("all objects", "by colour", "by shape", "collisions", "yes / no")


def kind(question: str) -> str:
    """Which of KINDS a RegionWorld video question is (annotate.video_questions writes them)."""
    if not question.startswith("How many"):
        return "yes / no"
    if "objects appear" in question:
        return "all objects"
    if "first appear" in question:
        return "by colour"
    return "collisions" if "collisions" in question else "by shape"


def score(name: str, run_dir: Path, data: Path, objects: str) -> tuple[dict, dict]:
    """world-vqa of one arm with one object list (cached in run_dir/eval-OBJECTS): the metrics with the share right
    per KINDS, and {question id: right?}."""
    print(f"[{name}] world-vqa, objects from {objects} ...", file=sys.stderr, flush=True)
    out = run_dir / f"eval-{objects}"
    extra = [] if objects == "none" else ["--objects", objects]
    result = json.loads(run(["eval", "--benchmark", "world-vqa", "--data", str(data), "--model",
                             str(run_dir / "final"), "--out", str(out), *extra, "--json"], f"{name}: eval {objects}"))
    questions = {q["id"]: q["Question"] for q in json.loads((data / "video_qa.json").read_text())}
    right = {r["id"]: bool(r["correct"]) for r in json.loads((out / "results.json").read_text())["per_sample"]}
    row = {"overall": round(result["metrics"]["overall"], 1), "questions": len(right)}
    for k in KINDS:
        hits = [ok for qid, ok in right.items() if kind(questions[qid]) == k]
        row[k] = round(100.0 * sum(hits) / len(hits), 1) if hits else None
    return row, right


def main(argv=None) -> int:
    ap = arm_parser(__doc__, ARMS, "object_tokens_vqa")
    args = ap.parse_args(argv)
    names = chosen_arms(args.only, ARMS)
    out = Path(args.out)
    data = held_out_data(out)
    rows, right, seconds = {}, {}, {}
    for name in names:
        start = time.time()
        cfg, run_dir = seeded_arm(name, args.steps, ARMS, args.seed, out)
        train_arm(name, cfg, run_dir)
        for objects in OBJECT_LISTS[name]:
            rows[f"{name} ({objects})"], right[f"{name} ({objects})"] = score(name, run_dir, data, objects)
        seconds[name] = round(time.time() - start, 1)
    cols = ("overall", *KINDS)
    table = ["| arm (object list) | " + " | ".join(cols) + " | vs pool (95%) |", "|---|" + "---|" * (len(cols) + 1)]
    base = right.get("pool (none)")
    effects = {}
    for n, r in rows.items():
        if base is not None and n != "pool (none)":
            effects[n] = paired_difference(right[n], base)
        d = effects.get(n)
        vs = f"{d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}]" if d else "-"
        table.append(f"| {n} | " + " | ".join(str(r[c]) for c in cols) + f" | {vs} |")
    print("\n".join(table))
    result = {"benchmark": "object_tokens_vqa", "steps": args.steps, "seed": args.seed, "rows": rows,
              "seconds": seconds,
              "effects": {n: dict(zip(("points", "low", "high", "questions"), e)) for n, e in effects.items()}}
    atomic_write_text(out / (f"object_tokens_vqa-s{args.seed}.json" if args.seed else "object_tokens_vqa.json"),
                      json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
