"""Why the model copies its first box when it tracks: small from-scratch runs on the box-writing tasks.

The shipped model's world-sot AUC (49.4) is at the level of repeating the first box (50.5), and on the held-out
videos it writes the seed box again for every frame of a clip. Its context tokens say what is in each patch but
say where a patch is only through the vision tower's input embeddings and the token's index in the sequence.
``model.config.context_positions`` adds an embedding of each context token's place in the frame
(connectors.Connector.position_embeds), and ``model.ordinal_numbers`` starts the number tokens' embeddings, and
that place map, from the values they stand for (regionlm/model/ordinal.py).

Each arm trains the small model of motion_scratch (mask_pool with region_geometry, 2+2 layers, patches of 8)
from random weights on the tasks that write boxes (SOT, referring tracking, REC; 2:1:1), then is scored on the
held-out videos (val split, seed 2, as motion_scratch) with `regionlm eval --benchmark world-sot` and
`--benchmark world-rsot`; by how often its SOT boxes stay where the first box was ("static": every coordinate
within 1 pixel of frame 0's; the truth's share is printed beside) and how their moves follow the object's; by
the IoU of the first box the words alone give (referring tracking's frame 0); and by REC on that single frame
(`RegionLM.locate`: the mean IoU, and how the boxes' centres follow the truth's). Two more arms train REC alone,
without and with the places embedded: can the small model find an object from words when nothing else
competes? (The tracking prompts are new to them.) Then a curriculum: rec_then_track trains the mix for as many steps
again starting from rec_positions, against track_positions_more, which trains track_positions as long again (the
same 2x budget). The _frames arms also embed which frame each context token is from (model.config.context_frames).

A trained arm (OUT/runs/ARM/final) is not trained again and a scored one is not scored again; a cut-off run
resumes. Prints the table with the paired difference of per-sequence AUC against the base arm (95% bootstrap
interval) and writes OUT/tracking_scratch.json.

    python benchmarks/tracking_scratch.py [--steps 4000] [--only track,rec_positions,rec_then_track]
        [--seed 0] [--out benchmarks/results/tracking_scratch]
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
from motion_scratch import VAL, arm_parser, chosen_arms, held_out_data, seeded_arm, train_arm  # noqa: E402
from regionlm.data.io import atomic_write_text  # noqa: E402

TRACK = {"tasks": {"sot": 2, "rsot": 1, "rec": 1}}
# name -> (data overrides, model.config overrides, what it stands for)
ARMS = {
    "track": (TRACK, {}, "SOT, referring tracking and REC (2:1:1)"),
    "track_positions": (TRACK, {"context_positions": True},
                        "the same, each context token's place in the frame embedded (context_positions)"),
    "track_ordinal": (TRACK, {"context_positions": True},
                      "track_positions, the number tokens and the place map started from their value "
                      "(model.ordinal_numbers)"),
    # REC alone: can this small model find an object from words at all, when nothing else competes?
    "rec": ({"tasks": {"rec": 1}}, {}, "REC alone"),
    "rec_positions": ({"tasks": {"rec": 1}}, {"context_positions": True},
                      "REC alone, each context token's place embedded"),
    # a curriculum: the mix, started from rec_positions (the one arm that began to localise), and its
    # equal-budget control, track_positions trained as long again on the mix
    # (an arm of INIT_FROM lists only the model.config options it adds to its parent's)
    "rec_then_track": (TRACK, {}, "rec_positions, then the mix as long again"),
    "track_positions_more": (TRACK, {}, "track_positions, then the mix as long again"),
    # which frame each context token is from (context_frames): box k of a track is to be read from frame k
    "track_frames": (TRACK, {"context_positions": True, "context_frames": True},
                     "track_positions, each context token's frame embedded too (context_frames)"),
    "rec_then_track_frames": (TRACK, {"context_frames": True}, "rec_then_track, each context token's frame embedded"),
}
MODEL_SPEC = {"track_ordinal": {"ordinal_numbers": True}}  # model keys beside model.config, per arm
INIT_FROM = {"rec_then_track": "rec_positions", "track_positions_more": "track_positions",  # arm -> arm it goes on
             "rec_then_track_frames": "rec_positions"}
PAIRS = (("track", "track_positions"), ("track_positions", "track_ordinal"), ("track", "track_ordinal"),
         ("track_positions", "track_positions_more"), ("track_positions_more", "rec_then_track"),
         ("track_positions", "track_frames"), ("rec_then_track", "rec_then_track_frames"))
# (the REC arms are compared by rec_scores; their SOT and referring tracking are untrained prompts)
BENCHMARKS = ("world-sot", "world-rsot")
STATIC_PX = 1.0  # a box "stays" when every coordinate is within this of frame 0's


def arm_run(name: str, steps: int, seed: int, out: Path) -> tuple[dict, Path]:
    """Arm ``name``'s training config and run folder. An arm of INIT_FROM starts from the final weights of the arm
    it goes on from (OUT/runs/PARENT/final, which carry its model.config), with the options it adds."""
    cfg, run_dir = seeded_arm(name, steps, ARMS, seed, out)
    if name in INIT_FROM:
        cfg["model"] = {"init_from": str(arm_run(INIT_FROM[name], steps, seed, out)[1] / "final")}
        if ARMS[name][1]:
            cfg["model"]["config"] = dict(ARMS[name][1])
    else:
        cfg["model"].update(MODEL_SPEC.get(name, {}))
    return cfg, run_dir


def evaluate(name: str, run_dir: Path, data: Path, bench: str) -> dict:
    """One arm's results.json on ``bench`` (cached in run_dir/eval-BENCH)."""
    out = run_dir / f"eval-{bench}"
    if not (out / "results.json").is_file():
        print(f"[{name}] {bench} ...", file=sys.stderr, flush=True)
        run(["eval", "--benchmark", bench, "--data", str(data), "--model", str(run_dir / "final"), "--out", str(out),
             "--json"], f"{name}: eval {bench}")
    return json.loads((out / "results.json").read_text())


def static_share(tracks: list) -> float:
    """% of frames after the first (where a box is given) whose box is frame 0's, to STATIC_PX."""
    stay = total = 0
    for boxes in tracks:
        first = boxes[0]
        for box in boxes[1:]:
            if first is None or box is None:
                continue
            total += 1
            stay += all(abs(a - b) <= STATIC_PX for a, b in zip(box, first))
    return round(100.0 * stay / max(total, 1), 1)


def truth_tracks(data: Path, task: str = "sot") -> dict:
    """The val split's ground-truth boxes of ``task`` (sot, rsot) per sequence id: [x, y, w, h] per frame (None
    where absent)."""
    tracks = {}
    for line in (data / f"{task}.jsonl").read_text().splitlines():
        rec = json.loads(line)
        tracks[rec["id"]] = [None if a or b is None else [b[0], b[1], b[2] - b[0], b[3] - b[1]]
                             for b, a in zip(rec["boxes"], rec["absent"])]
    return tracks


def correlation(a, b) -> float:
    """Pearson correlation of two series, rounded; 0.0 when either is constant or there are under 3 points."""
    import numpy as np

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return 0.0
    return round(float(np.corrcoef(a, b)[0, 1]), 2)


def follows(rows: list, truth: dict, frames: int = 8) -> tuple:
    """Correlation, in x and in y, of how far each SOT box's centre moved from the sequence's first box with how
    far the object's moved, over the first ``frames`` frames of each sequence (~0: the box does not follow)."""
    import numpy as np

    def centre(b):
        return np.array([b[0] + b[2] / 2, b[1] + b[3] / 2])

    pairs = []
    for r in rows:
        boxes, true = r["boxes"], truth[r["id"]]
        start = next((t for t, b in enumerate(true) if b is not None), None)
        if start is None or boxes[start] is None:
            continue
        for t in range(start + 1, min(start + frames, len(boxes))):
            if boxes[t] is not None and true[t] is not None:
                pairs.append([*(centre(boxes[t]) - centre(boxes[start])), *(centre(true[t]) - centre(true[start]))])
    d = np.array(pairs, float).reshape(-1, 4)
    return correlation(d[:, 0], d[:, 2]), correlation(d[:, 1], d[:, 3])


def first_box_iou(rows: list, truth: dict) -> float:
    """Mean IoU (%) of each sequence's box on frame 0 against the truth there (no box: 0): how well the words alone
    find the object, before any tracking."""
    from regionlm.eval.metrics.tracking import iou_xywh

    ious = [float(iou_xywh([r["boxes"][0]], [truth[r["id"]][0]])[0]) if r["boxes"][0] is not None else 0.0
            for r in rows if truth[r["id"]][0] is not None]
    return round(100.0 * sum(ious) / max(len(ious), 1), 1)


def rec_scores(name: str, run_dir: Path, data: Path, truth: dict) -> dict:
    """REC on single frames: ``RegionLM.locate(frame, expression)`` on each referring-tracking record's first
    frame (``truth``: truth_tracks of rsot). Returns the mean IoU (%, no box: 0) and the correlation of the boxes'
    centres with the truth's, in x and y (found boxes only; ~0: the box does not follow the object), cached in
    run_dir/rec.json. Unlike world-rsot this asks with the prompt every arm trained on."""
    cache = run_dir / "rec.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    import numpy as np

    from regionlm import RegionLM
    from regionlm.eval.metrics.tracking import iou_xywh
    from regionlm.video import VideoReader

    print(f"[{name}] REC on single frames ...", file=sys.stderr, flush=True)
    model = RegionLM.load(run_dir / "final", device="cpu", progress=False)
    ious, centres, videos = [], [], {}
    for line in (data / "rsot.jsonl").read_text().splitlines():
        rec = json.loads(line)
        box = truth[rec["id"]][rec["init_frame"]]
        if box is None:
            continue
        if rec["video"] not in videos:  # several expressions per video: each is decoded once
            with VideoReader(data / rec["video"]) as reader:
                videos[rec["video"]] = reader.get_frames(list(range(reader.num_frames)))
        found = model.locate(videos[rec["video"]][rec["init_frame"]], rec["expression"])
        ious.append(0.0 if found is None else float(iou_xywh([found], [box])[0]))
        if found is not None:
            centres.append([found[0] + found[2] / 2, found[1] + found[3] / 2, box[0] + box[2] / 2,
                            box[1] + box[3] / 2])
    c = np.array(centres, float).reshape(-1, 4)
    out = {"mean_iou": round(100.0 * sum(ious) / max(len(ious), 1), 1),
           "centre_corr_x": correlation(c[:, 0], c[:, 2]), "centre_corr_y": correlation(c[:, 1], c[:, 3]),
           "expressions": len(ious), "found": len(c)}
    atomic_write_text(cache, json.dumps(out) + "\n")
    return out


def main(argv=None) -> int:
    ap = arm_parser(__doc__, ARMS, "tracking_scratch")
    args = ap.parse_args(argv)
    names = chosen_arms(args.only, ARMS)
    out = Path(args.out)
    data = held_out_data(out)
    rows, per_seq = {}, {}
    rsot_truth, sot_truth = truth_tracks(data, "rsot"), truth_tracks(data)
    for name in names:
        start = time.time()
        if name in INIT_FROM:  # the arm it goes on from is trained first
            train_arm(INIT_FROM[name], *arm_run(INIT_FROM[name], args.steps, args.seed, out))
        cfg, run_dir = arm_run(name, args.steps, args.seed, out)
        train_arm(name, cfg, run_dir)
        results = {b: evaluate(name, run_dir, data, b) for b in BENCHMARKS}
        sot = results["world-sot"]
        per_seq[name] = {r["id"]: r["auc"] / 100.0 for r in sot["per_sample"]}
        rows[name] = {"what": ARMS[name][2],
                      **{f"{b}_auc": round(r["metrics"]["auc"], 1) for b, r in results.items()},
                      "sot_op50": round(sot["metrics"]["op50"], 1),
                      "sot_static": static_share([r["boxes"] for r in sot["per_sample"]]),
                      **dict(zip(("sot_follows_x", "sot_follows_y"), follows(sot["per_sample"], sot_truth))),
                      "rsot_first_iou": first_box_iou(results["world-rsot"]["per_sample"], rsot_truth),
                      **{f"rec_{k}": v for k, v in rec_scores(name, run_dir, data, rsot_truth).items()
                         if k in ("mean_iou", "centre_corr_x", "centre_corr_y")},
                      "sequences": sot["num_samples"], "seconds": round(time.time() - start, 1)}
    truth_static = static_share(list(sot_truth.values()))
    cols = ("world-sot_auc", "sot_op50", "sot_static", "sot_follows_x", "sot_follows_y", "world-rsot_auc",
            "rsot_first_iou", "rec_mean_iou", "rec_centre_corr_x", "rec_centre_corr_y")
    table = ["| arm | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    table += [f"| {n} | " + " | ".join(str(r[c]) for c in cols) + " |" for n, r in rows.items()]
    table.append(f"(the truth: {truth_static}% of frames within {STATIC_PX} px of frame 0's box)")
    effects = {}
    for base, variant in PAIRS:
        if base in per_seq and variant in per_seq:
            d, lo, hi, n = effects[f"{variant} - {base}"] = paired_difference(per_seq[variant], per_seq[base])
            table.append(f"{variant} - {base}: world-sot AUC {d:+.1f} [{lo:+.1f}, {hi:+.1f}] over {n} sequences")
    print("\n".join(table))
    result = {"benchmark": "tracking_scratch", "steps": args.steps, "seed": args.seed, "val": VAL, "arms": rows,
              "truth_static": truth_static, "effects": effects}
    atomic_write_text(out / (f"tracking_scratch-s{args.seed}.json" if args.seed else "tracking_scratch.json"),
                      json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
