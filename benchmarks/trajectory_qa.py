"""Does the trajectory token help region questions, as it helped descriptions? Small from-scratch runs, one change
each, on region multiple choice.

benchmarks/motion_scratch.py showed, on descriptions, that a small mask_pool model says where its region starts,
ends and moves only with the trajectory token (model.config.region_trajectory). This script asks the same of
region questions (the Bench-Q analog: Future Predictions and Sequential questions are about where a region goes):
the same small model (motion_scratch.BASE) trained from random weights on region_qa (alone, or with descriptions as
the default config mixes them), then scored with `regionlm eval --benchmark world-q` on the held-out videos (val
split, seed 2) in both of VideoRefer-Bench-Q's modes: ``single`` (each region on its key frame, as the shipped
model is scored) and ``multi`` (on every frame its annotation has a mask, so a velocity is measurable). Arms that
also train on descriptions are scored on 120 held-out descriptions as well (motion_scratch.description_scores), to
see whether motion learned there carries over to the questions.

Arms (ARMS): regions as the default config trains them (first frame only 30%, every frame 35%, else the key
frame), the same with the trajectory token, the trajectory token with every region on every frame where it is
seen, questions mixed with descriptions (2:1, as default.yaml weighs them) without and with the token, and the
last with a 1.5x wider language model, with twice the examples drawn from each video, with each question
that has a look-alike drawn together with its swap (the same question about the look-alike's region), or with
Token Marks beside the pooled tokens (model.config.region_marks: with the guide head, with smaller marks,
without the guide head), or with each context token's place embedded (model.config.context_positions).

A trained arm (OUT/runs/ARM/final) is not trained again and a scored one is not scored again (the eval caches);
a cut-off run resumes. Prints the table and writes OUT/trajectory_qa.json.

    python benchmarks/trajectory_qa.py [--steps 4000] [--only mixed,trajectory,joint,joint_trajectory]
        [--modes single,multi] [--seed 0] [--out benchmarks/results/trajectory_qa]
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
from motion_scratch import (BASE, VAL, arm_config, arm_parser, description_scores, held_out_data,  # noqa: E402
                            seeded_arm, train_arm)
from regionlm.data.io import atomic_write_text  # noqa: E402

QA = {"tasks": {"region_qa": 1}}
MIXED = {**QA, "first_frame_only": 0.3, "multi_frame_prob": 0.5}
JOINT = {**MIXED, "tasks": {"region_qa": 2, "region_caption": 1}}  # as default.yaml weighs the two
# name -> (data overrides, model.config overrides, what it stands for)
ARMS = {
    "mixed": (MIXED, {}, "regions as the default config trains them (velocity measurable in 35%)"),
    "trajectory": (MIXED, {"region_trajectory": True}, "the same, plus a trajectory token of its own"),
    "trajectory_every": (QA, {"region_trajectory": True},
                         "trajectory token, every region on every frame where it is seen"),
    "joint": (JOINT, {}, "questions and descriptions (2:1), regions as the default config trains them"),
    "joint_trajectory": (JOINT, {"region_trajectory": True}, "the same, plus a trajectory token of its own"),
    # the LM 1.5x wider (2.25x its parameters): on a GPU this model's steps cost the same at either width (the
    # device waits on kernel launches and data, not arithmetic), so more parameters would come for free there
    "joint_trajectory_wide": (JOINT, {"region_trajectory": True, "text_config": {
        **BASE["model"]["config"]["text_config"], "hidden_size": 192, "intermediate_size": 576}},
        "the same, the language model 1.5x wider"),
    # twice the examples from each rendered video: rendering is most of the data workers' time, so a run limited
    # by them (its log's data_wait near 1) would get ~1.4x the examples per second
    "joint_trajectory_epv8": ({**JOINT, "examples_per_video": 8}, {"region_trajectory": True},
                              "joint_trajectory with 8 examples drawn from each video instead of 4"),
    # the region swap asks the model to change its answer when given the look-alike's region; trained, the two
    # questions come apart (lookalike_prob 0.5). Drawn as a pair, one batch holds both: the same words, two
    # regions, two answers, so only the region can tell the answers apart
    "joint_trajectory_pairs": ({**JOINT, "lookalike_pairs": True}, {"region_trajectory": True},
                               "joint_trajectory with each look-alike question and its swap drawn together"),
    # pooled appearance is the same for two look-alikes; Omni-RGPT's Token Marks (with the guide head) mark where
    # the region is among the context tokens, and in the token_mark comparison they followed the region best
    "joint_trajectory_marks": (JOINT, {"region_trajectory": True, "region_marks": True},
                               "joint_trajectory with Token Marks and the guide head as well (region_marks)"),
    # at unit scale the marks cost the descriptions their colour (the marked context tokens' appearance drowned)
    "joint_trajectory_marks_small": (JOINT, {"region_trajectory": True, "region_marks": True, "mark_init_std": 0.2},
                                     "joint_trajectory_marks with the marks initialised 5x smaller"),
    "joint_trajectory_marks_noguide": (JOINT, {"region_trajectory": True, "region_marks": True, "guide_head": False},
                                       "joint_trajectory_marks without the guide head"),
    # with the head (alpha 0.5) the marks are read and colour is lost, without it they are ignored: in between?
    "joint_trajectory_marks_alpha0.1": (JOINT, {"region_trajectory": True, "region_marks": True, "guide_alpha": 0.1},
                                        "joint_trajectory_marks with the guide head's loss weighted 0.1, not 0.5"),
    # every context token's place embedded (tracking_scratch: the box-writing tasks); does it cost region questions?
    "joint_trajectory_positions": (JOINT, {"region_trajectory": True, "context_positions": True},
                                   "joint_trajectory with each context token's place embedded (context_positions)"),
}
# (base, variant): arms that differ in one thing, compared question by question
PAIRS = (("mixed", "trajectory"), ("joint", "joint_trajectory"), ("joint_trajectory", "joint_trajectory_wide"),
         ("joint_trajectory", "joint_trajectory_epv8"), ("joint_trajectory", "joint_trajectory_pairs"),
         ("joint_trajectory", "joint_trajectory_marks"), ("joint_trajectory", "joint_trajectory_marks_small"),
         ("joint_trajectory", "joint_trajectory_marks_noguide"),
         ("joint_trajectory", "joint_trajectory_marks_alpha0.1"),
         ("joint_trajectory", "joint_trajectory_positions"))
MODES = ("single", "multi")
TYPES = ("Basic Questions", "Sequential Questions", "Relationship Questions", "Reasoning Questions",
         "Future Predictions")
COLUMNS = ("overall", *TYPES, "region_swap")
DESCRIPTIONS = 120  # held-out descriptions scored for the arms that train on them (as motion_scratch)


def score(name: str, run_dir: Path, data: Path, mode: str) -> dict:
    """world-q metrics of one arm in one region mode (cached in run_dir/eval-MODE)."""
    print(f"[{name}] world-q, regions {mode} ...", file=sys.stderr, flush=True)
    result = json.loads(run(["eval", "--benchmark", "world-q", "--data", str(data), "--model",
                             str(run_dir / "final"), "--out", str(run_dir / f"eval-{mode}"), "--region-mode", mode,
                             "--json"], f"{name}: eval {mode}"))
    metrics = result.get("metrics", result)
    return {**{c: None if metrics.get(c) is None else round(metrics[c], 1) for c in COLUMNS},
            "samples": result.get("num_samples")}


OUTCOMES = ("correct", "swap_follows")  # per question: right? and, where asked, did the answer follow the swap?


def answers(run_dir: Path, mode: str) -> dict:
    """Per OUTCOMES key, {question id: bool} from one arm's world-q evaluation in one region mode."""
    rows = json.loads((run_dir / f"eval-{mode}" / "results.json").read_text())["per_sample"]
    return {key: {r["id"]: bool(r[key]) for r in rows if key in r} for key in OUTCOMES}


def paired_effects(run_dirs: dict, modes: list) -> dict:
    """Per pair of PAIRS that ran, per mode: the variant's paired effect against its base on questions right and
    on swaps followed (points, 95% bootstrap interval, questions)."""
    out = {}
    for base, variant in PAIRS:
        if base in run_dirs and variant in run_dirs:
            out[f"{variant} - {base}"] = by_mode = {}
            for m in modes:
                changed, before = answers(run_dirs[variant], m), answers(run_dirs[base], m)
                by_mode[m] = {k: paired_difference(changed[k], before[k]) for k in OUTCOMES}
    return out


def main(argv=None) -> int:
    ap = arm_parser(__doc__, ARMS, "trajectory_qa")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated region modes to score")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(ARMS)
    modes = args.modes.split(",")
    bad = [n for n in names if n not in ARMS] + [m for m in modes if m not in MODES]
    if bad:
        print(f"unknown arm(s) or mode(s) {', '.join(bad)}; arms: {', '.join(ARMS)}; modes: {', '.join(MODES)}",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    data = held_out_data(out)
    rows, run_dirs = {}, {}
    for name in names:
        start = time.time()
        cfg, run_dir = seeded_arm(name, args.steps, ARMS, args.seed, out)
        train_arm(name, cfg, run_dir)
        run_dirs[name] = run_dir
        rows[name] = {"what": ARMS[name][2], "modes": {m: score(name, run_dir, data, m) for m in modes}}
        if "region_caption" in ARMS[name][0]["tasks"]:  # did it learn motion where descriptions teach it?
            print(f"[{name}] held-out descriptions ...", file=sys.stderr, flush=True)
            rows[name]["descriptions"] = description_scores(name, run_dir, data, DESCRIPTIONS)
        rows[name]["seconds"] = round(time.time() - start, 1)
    short = {"Basic Questions": "Basic", "Sequential Questions": "Seq", "Relationship Questions": "Rel",
             "Reasoning Questions": "Reas", "Future Predictions": "Future", "region_swap": "swap"}
    table = ["| arm | regions | " + " | ".join(short.get(c, c) for c in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    table += [f"| {n} | {m} | " + " | ".join(str(s[c]) for c in COLUMNS) + " |"
              for n, r in rows.items() for m, s in r["modes"].items()]
    described = {n: r["descriptions"] for n, r in rows.items() if "descriptions" in r}
    if described:
        cols = ("cider", "attr_colour", "attr_shape", "attr_motion", "said_start", "said_end")
        table += ["", "| arm | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        table += [f"| {n} | " + " | ".join(str(d[c]) for c in cols) + " |" for n, d in described.items()]
    effects = paired_effects(run_dirs, modes)
    for pair, by_mode in effects.items():
        for m, e in by_mode.items():
            table.append(f"{pair} ({m}): " + ", ".join(
                f"{k} {d:+.1f} [{lo:+.1f}, {hi:+.1f}] over {n}" for k, (d, lo, hi, n) in e.items()))
    print("\n".join(table))
    result = {"benchmark": "trajectory_qa", "steps": args.steps, "seed": args.seed, "val": VAL, "arms": rows,
              "effects": effects}
    atomic_write_text(out / (f"trajectory_qa-s{args.seed}.json" if args.seed else "trajectory_qa.json"),
                      json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
