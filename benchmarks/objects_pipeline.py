"""The object pipeline (detect -> segment -> track, classical backend): quality on RegionWorld, speed, memory.

- RegionWorld test split (ground truth exact): N videos, each as rendered (in memory) and as a user or the model
  gets it, decoded from the H.264 mp4 RegionWorld writes (4:2:0 colour). Per frame, ground-truth objects are
  matched one-to-one to the pipeline's masks (Hungarian on mask IoU, a match needs IoU >= 0.5). Recall = matched /
  (object, frame) pairs where the object is visible (any visible pixel; also reported for >= 16 visible pixels).
  Identity switch = a ground-truth object matched to a different track id than at its previous match (MOT
  IDSW); reported per 10 videos. Bars: recall >= 95%, <= 1 switch per 10 videos. Each miss is classified
  (miss_kind): merged into a larger mask, a fragment, or no mask on the object at all.
- Speed: frames/s of the whole pipeline (decoding included) at 64x64 (a RegionWorld mp4) and at 480p (DAVIS
  car-shadow, 854x480, and the first frames of bedroom.mp4, 960x540) on this machine's 2 cores.
- Memory: a synthetic 2,000-frame 256x256 mp4 (written to /tmp, streaming); the pipeline runs on its first 200
  and on all 2,000 frames (--memory-frames), each in a fresh process; peak RSS and the tracemalloc peak (numpy
  included) should not grow with the length (all 2,000 frames decoded would be 393 MB).

    python benchmarks/objects_pipeline.py [--videos 50] [--skip-memory] [--memory-frames 200,2000]
                                          [--smooth-chroma-side 128] [--tracker-motion affine]
                                          [--tracker-grabcut-side 0]
                                          [--out benchmarks/results/objects_pipeline.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from regionlm.objects.classical.track import MOTIONS, ClassicalTrackerConfig  # noqa: E402
from regionlm.objects.pipeline import ObjectPipeline, PipelineConfig, mask_iou_matrix, match  # noqa: E402
from regionlm.world import WorldConfig, make_video  # noqa: E402

DATA = REPO.parent / "shared" / "data"


# ------------------------------------------------------------------ RegionWorld


MISSES = ("merged", "fragment", "no mask", "other")


def miss_kind(truth: np.ndarray, masks: list) -> str:
    """Why a visible object matched no mask: the mask overlapping it most holds at least half of it but is mostly
    something else ("merged": with another object, or the background), is mostly the object but holds less than
    half of it ("fragment"), or no mask overlaps it by IoU 0.1 ("no mask")."""
    best, best_iou = None, 0.0
    for m in masks:
        inter = (m & truth).sum()
        iou = inter / max((m | truth).sum(), 1)
        if iou > best_iou:
            best, best_iou = m, iou
    if best is None or best_iou < 0.1:
        return "no mask"
    inter = (best & truth).sum()
    if inter >= 0.5 * truth.sum() and inter < 0.5 * best.sum():
        return "merged"
    if inter >= 0.5 * best.sum():
        return "fragment"
    return "other"


def evaluate_video(result, rendering, min_area: int = 1) -> dict:
    """Matched / visible (object, frame) pairs, identity switches and the misses by kind (MISSES) of one video."""
    T = rendering.frames.shape[0]
    last: dict[int, int] = {}
    hits = total = switches = 0
    misses = dict.fromkeys(MISSES, 0)
    for t in range(T):
        gt = [k for k in range(rendering.visible.shape[0]) if rendering.visible[k, t].sum() >= min_area]
        pred = [o for o in result.objects if t in o.masks]
        iou = mask_iou_matrix([rendering.visible[k, t] for k in gt], [o.masks[t] for o in pred])
        got = {gt[a]: pred[b].id for a, b in match(1.0 - iou, 0.5)}
        total += len(gt)
        hits += len(got)
        for k, obj_id in got.items():
            switches += k in last and last[k] != obj_id
            last[k] = obj_id
        for k in gt:
            if k not in got:
                misses[miss_kind(rendering.visible[k, t], [o.masks[t] for o in pred])] += 1
    return {"hits": hits, "visible": total, "switches": switches, "misses": misses}


def regionworld(n: int, seed: int, cfg: PipelineConfig, decoded: bool = False) -> dict:
    """The pipeline on N test videos; ``decoded``: on the frames of the mp4 RegionWorld writes, read back."""
    from tqdm import tqdm

    from regionlm.video import VideoReader, write_video
    from regionlm.world.generate import VIDEO_OPTIONS

    world = WorldConfig()
    rows = []
    frames = seconds = 0
    for i in tqdm(range(n), desc=f"RegionWorld test ({'decoded' if decoded else 'rendered'})", unit="video",
                  file=sys.stderr):
        scene, r, _ = make_video(seed, "test", i, world)
        video = r.frames
        if decoded:
            with tempfile.TemporaryDirectory() as tmp:
                write_video(Path(tmp) / "v.mp4", r.frames, fps=world.fps, options=VIDEO_OPTIONS)
                with VideoReader(Path(tmp) / "v.mp4") as reader:
                    video = reader.get_frames(range(reader.num_frames))
        T, H, W = video.shape[:3]
        res = ObjectPipeline(cfg).run_frames(enumerate(video), T, H, W, f"test-{i}")
        every = evaluate_video(res, r, 1)
        big = evaluate_video(res, r, 16)
        rows.append({"index": i, "background": scene.background["kind"], "objects_true": len(scene.objects),
                     "objects_found": len(res.objects), **every, "hits_16px": big["hits"],
                     "visible_16px": big["visible"], "seconds": res.timing["total"]})
        frames += T
        seconds += res.timing["total"]
    hits, vis = sum(r["hits"] for r in rows), sum(r["visible"] for r in rows)
    hits16, vis16 = sum(r["hits_16px"] for r in rows), sum(r["visible_16px"] for r in rows)
    sw = sum(r["switches"] for r in rows)
    return {"videos": n, "seed": seed, "frames": "decoded mp4" if decoded else "rendered",
            "recall": hits / vis, "recall_16px": hits16 / vis16,
            "misses": {k: sum(r["misses"][k] for r in rows) for k in MISSES},
            "id_switches": sw, "id_switches_per_10_videos": 10 * sw / n,
            "objects_true": sum(r["objects_true"] for r in rows),
            "objects_found": sum(r["objects_found"] for r in rows),
            "fps_in_memory": frames / seconds, "per_video": rows}


# ------------------------------------------------------------------ speed


def speed(video, frames: int | None, cfg: PipelineConfig, label: str) -> dict:
    """Frames/s of ObjectPipeline.run on a video file or folder (decoding included); ``frames`` limits the run to
    the first frames (a frame folder of symlinks, so the reader still streams)."""
    from regionlm.video import VideoReader

    with VideoReader(video) as r:
        n, H, W = r.num_frames, r.height, r.width
    with tempfile.TemporaryDirectory() as tmp:
        src = video
        if frames is not None and frames < n:
            src = _first_frames(video, frames, Path(tmp))
            n = frames
        start = time.perf_counter()
        res = ObjectPipeline(cfg).run(src)
        secs = time.perf_counter() - start
    return {"video": label, "size": f"{W}x{H}", "frames": n, "seconds": round(secs, 2), "fps": n / secs,
            "objects": len(res.objects), "keyframes": res.timing["keyframes"],
            "stage_seconds": {k: res.timing[k] for k in ("decode", "detect", "segment", "track", "associate",
                                                         "postprocess")}}


def _first_frames(video, n: int, tmp: Path) -> Path:
    video = Path(video)
    if video.is_dir():
        files = sorted(p for p in video.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]
        for f in files:
            (tmp / f.name).symlink_to(f.resolve())
        return tmp
    from regionlm.video import VideoReader, write_video

    with VideoReader(video) as r:
        clip = r.get_frames(range(n))
        fps = r.fps or 30
    out = tmp / "clip.mp4"
    write_video(out, clip, fps=fps, options={"crf": "12", "preset": "veryfast"})
    return out


# ------------------------------------------------------------------ memory


def write_long_video(path: Path, frames: int, size: int = 256, seed: int = 0) -> None:
    """Five bouncing shapes of saturated colours on a striped background, written frame by frame."""
    import av
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    bg = (40 + 18 * np.sin(2 * np.pi * (xx + 0.5 * yy) / 14))[..., None] * np.array([0.8, 0.7, 1.0])
    bg = np.clip(bg, 0, 255).astype(np.uint8)
    colours = [(220, 40, 40), (40, 175, 60), (45, 95, 235), (235, 215, 40), (40, 205, 215)]
    pos = rng.uniform(30, size - 30, (5, 2))
    vel = rng.uniform(-2.5, 2.5, (5, 2))
    radius = rng.uniform(10, 20, 5)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30, options={"crf": "12", "preset": "veryfast"})
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for _ in range(frames):
            img = bg.copy()
            for k in range(5):
                x, y = pos[k]
                if k % 2:
                    cv2.circle(img, (int(x), int(y)), int(radius[k]), colours[k], -1)
                else:
                    r = int(radius[k])
                    cv2.rectangle(img, (int(x) - r, int(y) - r), (int(x) + r, int(y) + r), colours[k], -1)
            pos += vel
            for k in range(5):
                for a in range(2):
                    if not radius[k] <= pos[k, a] <= size - radius[k]:
                        vel[k, a] *= -1
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode(None))


_CHILD = r"""
import json, resource, sys, time, tracemalloc
sys.path.insert(0, {repo!r})
from regionlm.objects.pipeline import ObjectPipeline, PipelineConfig
from regionlm.video import VideoReader
n = int(sys.argv[1])
tracemalloc.start()
reader = VideoReader(sys.argv[2])
def frames():
    for s in range(0, n, 16):
        idx = list(range(s, min(s + 16, n)))
        yield from zip(idx, reader.get_frames(idx))
t = time.perf_counter()
res = ObjectPipeline(PipelineConfig()).run_frames(frames(), n, reader.height, reader.width, sys.argv[2])
secs = time.perf_counter() - t
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({{"frames": n, "seconds": round(secs, 1), "fps": n / secs, "objects": len(res.objects),
                  "tracemalloc_peak_mb": peak / 2**20,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def memory(lengths=(200, 2000), size: int = 256) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = Path(tmp) / "long.mp4"
        write_long_video(path, max(lengths), size)
        code = _CHILD.format(repo=str(REPO))
        for n in lengths:
            out = subprocess.run([sys.executable, "-c", code, str(n), str(path)], capture_output=True, text=True,
                                 check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  memory run {n} frames: {rows[-1]}", file=sys.stderr)
    return rows


# ------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames-480p", type=int, default=40, help="frames of each 480p clip timed")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--smooth-chroma-side", type=int, default=PipelineConfig.smooth_chroma_side,
                    help="frames with a long side up to this get their chroma smoothed first (0: never; "
                         "default %(default)s)")
    ap.add_argument("--tracker-motion", choices=MOTIONS, help="the mask tracker's motion model (default: the "
                    f"tracker's, {ClassicalTrackerConfig.motion})")
    ap.add_argument("--tracker-grabcut-side", type=int, help="the mask tracker's GrabCut work side (0: full "
                    f"resolution; default the tracker's, {ClassicalTrackerConfig.grabcut_side})")
    ap.add_argument("--memory-frames", default="200,2000", help="lengths of the memory runs, comma separated")
    ap.add_argument("--out", default="benchmarks/results/objects_pipeline.json")
    args = ap.parse_args()
    tracker_options = {"motion": args.tracker_motion} if args.tracker_motion else {}
    if args.tracker_grabcut_side is not None:
        tracker_options["grabcut_side"] = args.tracker_grabcut_side
    cfg = PipelineConfig(smooth_chroma_side=args.smooth_chroma_side, tracker_options=tracker_options)
    load_before = os.getloadavg()

    worlds = [regionworld(args.videos, args.seed, cfg, decoded) for decoded in (False, True)]
    speeds = []
    with tempfile.TemporaryDirectory() as tmp:
        from regionlm.video import write_video

        _, r, _ = make_video(args.seed, "test", 0, WorldConfig(frames=64))
        clip = Path(tmp) / "world64.mp4"
        write_video(clip, r.frames, fps=8, options={"crf": "8", "preset": "veryfast"})
        speeds.append(speed(clip, None, cfg, "RegionWorld test-0 (64 frames)"))
    if (DATA / "davis-car-shadow").exists():
        speeds.append(speed(DATA / "davis-car-shadow" / "frames", args.frames_480p, cfg, "davis car-shadow"))
    if (DATA / "bedroom.mp4").exists():
        speeds.append(speed(DATA / "bedroom.mp4", args.frames_480p, cfg, "bedroom.mp4"))
    mem = [] if args.skip_memory else memory(tuple(int(v) for v in args.memory_frames.split(",")))
    load_after = os.getloadavg()

    print()
    print(f"RegionWorld test split, {args.videos} videos (seed {args.seed}), classical backend")
    print(f"  {'':<48} {'rendered':>9} {'decoded mp4':>12}")
    rows = [("recall @ mask IoU 0.5 (every visible frame)", lambda w: f"{100 * w['recall']:.1f}%", "bar >= 95%"),
            ("recall @ mask IoU 0.5 (visible >= 16 px)", lambda w: f"{100 * w['recall_16px']:.1f}%", ""),
            ("identity switches per 10 videos", lambda w: f"{w['id_switches_per_10_videos']:.2f}", "bar <= 1"),
            ("objects found / true", lambda w: f"{w['objects_found']} / {w['objects_true']}", "")]
    rows += [(f"  missed: {k}", lambda w, k=k: f"{w['misses'][k]}", "") for k in MISSES]
    for name, fmt, bar in rows:
        print(f"  {name:<48} {fmt(worlds[0]):>9} {fmt(worlds[1]):>12}   {bar}")
    print()
    print(f"{'speed':<32} {'size':>9} {'frames':>6} {'fps':>7} {'objects':>7} {'keyframes':>9}")
    for s in speeds:
        print(f"{s['video']:<32} {s['size']:>9} {s['frames']:>6} {s['fps']:>7.2f} {s['objects']:>7} "
              f"{s['keyframes']:>9}")
    if mem:
        print()
        print(f"{'memory (256x256)':<18} {'frames':>6} {'fps':>6} {'tracemalloc peak MB':>20} {'max RSS MB':>11}")
        for m in mem:
            print(f"{'':<18} {m['frames']:>6} {m['fps']:>6.1f} {m['tracemalloc_peak_mb']:>20.1f} "
                  f"{m['max_rss_mb']:>11.1f}")
    print(f"\nload average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} (2 cores; other work on the "
          "machine slows the timings)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": "objects_pipeline", "bars": {"recall": 0.95, "id_switches_per_10_videos": 1.0},
           "regionworld": worlds[0], "regionworld_decoded": worlds[1], "speed": speeds, "memory": mem,
           "config": _config_dict(cfg),
           "load_average": {"before": load_before, "after": load_after},
           "python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count()}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _config_dict(cfg) -> dict:
    from dataclasses import asdict

    return asdict(cfg)


if __name__ == "__main__":
    sys.exit(main())
