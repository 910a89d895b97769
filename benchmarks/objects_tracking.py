"""Classical trackers on real video: DAVIS mask tracking and VOT box tracking, plus RegionWorld mask tracking.

- DAVIS semi-supervised (davis-car-shadow, 854x480, 40 frames): the classical mask tracker from the first frame's
  ground-truth mask; J, F and J&F with the official definitions (regionlm.eval.metrics.vos: first and last frames
  not scored). Bar: J&F mean >= 0.70.
- VOT15 bag (480x360, 196 frames, rotated boxes -> axis-aligned keeping centre and area): success AUC (LaSOT /
  OTB protocol, regionlm.eval.metrics.tracking) of the classical box tracker and of plain OpenCV CSRT, both run here
  from the first box. Bar: AUC ratio classical / CSRT >= 1.
- RegionWorld test split (64x64, exact ground truth): each object tracked alone from its first visible frame;
  mean mask IoU and recall at IoU 0.5 on frames where it is visible, and how often a mask is given on frames where
  it is not (left the frame or fully hidden).
- The refiners side by side on DAVIS and RegionWorld (``--ablation-videos``): the measured choice of ``refine``
  (``auto``: GrabCut where the object's colours are reliable, the flow + colour fusion elsewhere).
Frames/s count tracking only (frames decoded beforehand), on this machine's cores; the load average is printed
because other work on the machine slows the timings.

    python benchmarks/objects_tracking.py [--world-videos 20] [--ablation-videos 10] [--no-ablation]
                                          [--out benchmarks/results/objects_tracking.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from regionlm.data.io import atomic_write_json  # noqa: E402
from regionlm.objects.classical.track import (BOX_TRACKERS, REFINERS, ClassicalMaskTracker,  # noqa: E402
                                              ClassicalTrackerConfig)

DATA = REPO.parent / "shared" / "data"
JF_BAR, AUC_RATIO_BAR = 0.70, 1.0


def read_frames(folder: Path) -> np.ndarray:
    from regionlm.video import VideoReader

    with VideoReader(folder) as r:
        return r.get_frames(range(r.num_frames))


# ------------------------------------------------------------------ DAVIS
def davis(folder: Path, refine: str) -> dict:
    from regionlm.data.davis import load_davis
    from regionlm.eval.metrics.vos import evaluate_vos_sequences

    seqs = load_davis(folder).records
    results, frames_done, secs = [], 0, 0.0
    for seq in seqs:
        frames = read_frames(seq.frames[0].parent)
        gt = np.stack([seq.masks[k] for k in seq.object_ids])
        tracker = ClassicalMaskTracker(ClassicalTrackerConfig(refine=refine))
        start = time.perf_counter()
        tracker.start(frames[0], {k: gt[i, 0] for i, k in enumerate(seq.object_ids)})
        pred = [gt[:, 0]]
        for f in frames[1:]:
            out = tracker.step(f)
            pred.append(np.stack([out[k] for k in seq.object_ids]))
        secs += time.perf_counter() - start
        frames_done += len(frames) - 1
        results.append((gt, np.stack(pred, 1)))
    res = evaluate_vos_sequences(results)
    return {"refine": refine, "sequences": [s.name for s in seqs], "jf": res["JF"], "j": res["J"]["mean"],
            "f": res["F"]["mean"], "j_decay": res["J"]["decay"], "fps": frames_done / secs,
            "size": f"{frames.shape[2]}x{frames.shape[1]}", "frames": frames_done + len(seqs)}


# ------------------------------------------------------------------ VOT
def vot(folder: Path, name: str) -> dict:
    from regionlm.data.vot import load_vot_sequence
    from regionlm.eval.metrics.tracking import evaluate_sequences

    seq = load_vot_sequence(folder)
    frames = read_frames(seq.frames_dir)
    gt = seq.boxes_xywh
    tracker = BOX_TRACKERS[name]()
    x, y, w, h = gt[0]
    start = time.perf_counter()
    tracker.init(frames[0], (x, y, x + w, y + h))
    pred = [gt[0]]
    for f in frames[1:]:
        b = tracker.update(f)
        pred.append([np.nan] * 4 if b is None else [b[0], b[1], b[2] - b[0], b[3] - b[1]])
    secs = time.perf_counter() - start
    res = evaluate_sequences([(gt, np.asarray(pred, np.float64), seq.absent)])
    return {"tracker": name, "sequence": seq.name, "auc": res["auc"], "op50": res["op50"], "op75": res["op75"],
            "precision": res["precision"], "fps": (len(frames) - 1) / secs,
            "size": f"{frames.shape[2]}x{frames.shape[1]}", "frames": len(frames)}


# ------------------------------------------------------------------ RegionWorld
def regionworld(videos: int, seed: int, refine: str = ClassicalTrackerConfig.refine) -> dict:
    from regionlm.world import WorldConfig, make_video

    ious, absent_frames, absent_given, frames_done, secs = [], 0, 0, 0, 0.0
    for i in range(videos):
        _, r, _ = make_video(seed, "test", i, WorldConfig())
        T = r.frames.shape[0]
        visible = r.visible[:, :T]
        for k in range(visible.shape[0]):
            present = visible[k].any(axis=(1, 2))
            if not present.any():
                continue
            s = int(np.argmax(present))
            tracker = ClassicalMaskTracker(ClassicalTrackerConfig(refine=refine))
            start = time.perf_counter()
            tracker.start(r.frames[s], {1: visible[k, s]})
            outs = [tracker.step(r.frames[t])[1] for t in range(s + 1, T)]
            secs += time.perf_counter() - start
            frames_done += T - s - 1
            for t, m in zip(range(s + 1, T), outs):
                g = visible[k, t]
                if g.any():
                    ious.append((m & g).sum() / (m | g).sum())
                else:
                    absent_frames += 1
                    absent_given += bool(m.any())
    ious = np.asarray(ious)
    return {"refine": refine, "videos": videos, "seed": seed, "visible_frames": len(ious), "mean_iou": float(ious.mean()),
            "recall_05": float((ious >= 0.5).mean()), "absent_frames": absent_frames,
            "mask_on_absent": absent_given, "fps": frames_done / secs, "size": "64x64"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA), help="the shared real data folder")
    ap.add_argument("--world-videos", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ablation-videos", type=int, default=10, help="RegionWorld videos of the refiner comparison")
    ap.add_argument("--no-ablation", action="store_true", help="skip the refiners side by side")
    ap.add_argument("--out", default="benchmarks/results/objects_tracking.json")
    args = ap.parse_args()
    data = Path(args.data)
    for name in ("davis-car-shadow", "vot15-bag"):
        if not (data / name).exists():
            print(f"missing real data {data / name}", file=sys.stderr)
            return 2

    load_before = os.getloadavg()
    default = ClassicalTrackerConfig().refine
    refiners = [default] + ([] if args.no_ablation else [r for r in REFINERS if r != default])
    vos = [davis(data / "davis-car-shadow", r) for r in refiners]
    boxes = {name: vot(data / "vot15-bag", name) for name in ("classical", "csrt")}
    world = regionworld(args.world_videos, args.seed) if args.world_videos > 0 else None
    world_ablation = [] if args.no_ablation or args.ablation_videos <= 0 else \
        [regionworld(args.ablation_videos, args.seed, r) for r in refiners]
    load_after = os.getloadavg()

    d = vos[0]
    ratio = boxes["classical"]["auc"] / boxes["csrt"]["auc"]
    print(f"DAVIS semi-supervised, {', '.join(d['sequences'])} ({d['size']}, {d['frames']} frames), classical mask "
          f"tracker by refiner")
    print(f"  {'refine':<10} {'J&F':>6} {'J':>6} {'F':>6} {'J decay':>8} {'frames/s':>9}")
    for row in vos:
        mark = "  <- default" if row["refine"] == default else ""
        print(f"  {row['refine']:<10} {row['jf']:6.3f} {row['j']:6.3f} {row['f']:6.3f} {row['j_decay']:8.3f} "
              f"{row['fps']:9.2f}{mark}")
    print(f"  bar: J&F >= {JF_BAR:.2f} -> {'PASS' if d['jf'] >= JF_BAR else 'FAIL'}")
    print()
    b = boxes["classical"]
    print(f"VOT15 {b['sequence']} ({b['size']}, {b['frames']} frames), success AUC (percent, LaSOT protocol)")
    print(f"  {'tracker':<10} {'AUC':>6} {'OP50':>6} {'OP75':>6} {'P@20':>6} {'frames/s':>9}")
    for row in boxes.values():
        print(f"  {row['tracker']:<10} {row['auc']:6.2f} {row['op50']:6.1f} {row['op75']:6.1f} {row['precision']:6.1f} "
              f"{row['fps']:9.2f}")
    print(f"  ratio classical / csrt = {ratio:.3f}; bar >= {AUC_RATIO_BAR:.1f} -> "
          f"{'PASS' if ratio >= AUC_RATIO_BAR else 'FAIL'}")
    if world:
        print()
        print(f"RegionWorld test split, {world['videos']} videos (seed {world['seed']}), each object alone from its "
              f"first visible frame")
        print(f"  mean IoU {world['mean_iou']:.3f}, recall @ IoU 0.5 {100 * world['recall_05']:.1f}% over "
              f"{world['visible_frames']} visible frames; a mask on {world['mask_on_absent']} of "
              f"{world['absent_frames']} frames where the object is not visible; {world['fps']:.1f} frames/s")
    if world_ablation:
        print()
        print(f"Refiners on RegionWorld ({world_ablation[0]['videos']} test videos, each object alone)")
        print(f"  {'refine':<10} {'mean IoU':>9} {'recall@0.5':>11} {'mask when absent':>17} {'frames/s':>9}")
        for row in world_ablation:
            print(f"  {row['refine']:<10} {row['mean_iou']:9.3f} {100 * row['recall_05']:10.1f}% "
                  f"{row['mask_on_absent']:>8} / {row['absent_frames']:<6} {row['fps']:9.1f}")
    print(f"\nload average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} ({os.cpu_count()} cores; other "
          f"work on the machine slows the timings)")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": "objects_tracking", "davis": vos, "vot": boxes, "auc_ratio": ratio, "regionworld": world,
           "regionworld_refiners": world_ablation, "load_average": [load_before[0], load_after[0]],
           "bars": {"davis_jf": {"value": d["jf"], "bar": JF_BAR, "pass": d["jf"] >= JF_BAR},
                    "vot_auc_ratio": {"value": ratio, "bar": AUC_RATIO_BAR, "pass": ratio >= AUC_RATIO_BAR}},
           "config": asdict(ClassicalTrackerConfig()), "python": sys.version.split()[0],
           "machine": platform.machine(), "cpus": os.cpu_count()}
    atomic_write_json(out, doc)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
