"""`regionlm demo`: the main job on the embedded default.

Until a trained model ships, the demo shows RegionWorld itself: it generates a fresh video, renders its ground
truth (masks and boxes on the frames) to an mp4, a GIF and an HTML page, and prints a sample of its annotations.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="generate a RegionWorld video and show its ground truth and questions")
    p.add_argument("--out", default="demo_out", help="folder for the video, the GIF and the HTML page")
    p.add_argument("--seed", type=int, default=None, help="default: a fresh random seed (printed)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from .video import write_gif, write_video
    from .world import WorldConfig, make_video
    from .world.generate import VIDEO_OPTIONS
    from .world.visualize import draw_ground_truth, html_report

    start = time.perf_counter()
    seed = args.seed if args.seed is not None else secrets.randbelow(10**6)
    cfg = WorldConfig()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _, r, notes = make_video(seed, "test", 0, cfg, video_path="video.mp4")
    gt = notes.ground_truth
    write_video(out / "video.mp4", r.frames, fps=cfg.fps, options=VIDEO_OPTIONS)
    drawn = draw_ground_truth(r.frames, gt)
    write_video(out / "ground_truth.mp4", drawn, fps=cfg.fps)
    write_gif(out / "ground_truth.gif", drawn, fps=cfg.fps)
    page = html_report(out / "index.html", f"RegionWorld video (seed {seed})", out / "ground_truth.gif", gt,
                       notes.region_qa, notes.region_caption)
    result = {
        "seed": seed,
        "video": str(out / "video.mp4"),
        "rendered": [str(out / "ground_truth.mp4"), str(out / "ground_truth.gif")],
        "html": str(page),
        "objects": [f"{o['id']}: {o['size']} {o['colour']} {o['shape']}" for o in gt["objects"]],
        "questions": [{"question": q["Question"], "objects": q["object_ids"], "options": q["options"],
                       "answer": q["Answer"]} for q in notes.region_qa[:5]],
        "description": notes.region_caption[0]["caption"] if notes.region_caption else None,
        "seconds": round(time.perf_counter() - start, 2),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"RegionWorld video (seed {seed}): {len(gt['objects'])} objects, {gt['num_frames']} frames "
          f"{gt['width']}x{gt['height']}")
    for line in result["objects"]:
        print(f"  object {line}")
    events = ", ".join(f"{e['kind']}@{e['frame']}" for e in gt["events"]) or "none"
    print(f"events: {events}")
    print("\nSample region questions (the region is the object named in brackets):")
    for q in result["questions"]:
        print(f"  [{', '.join(map(str, q['objects']))}] {q['question']}")
        print(f"      {' '.join(q['options'])}  ->  {q['answer']}")
    if result["description"]:
        print(f"\nDescription of object {notes.region_caption[0]['object_ids'][0]}: {result['description']}")
    print(f"\nground truth rendered to {out / 'ground_truth.mp4'} and {out / 'ground_truth.gif'}")
    print(f"open {page} in a browser  ({result['seconds']} s)")
    return 0
