"""`regionlm demo`: the main job on the embedded default model.

One fresh RegionWorld video (exact ground truth) goes through everything the package does: the classical
detect-segment-track pipeline finds its objects, the model answers some of the video's region questions and
describes one object, tracks one object from its box on its first well-visible frame, and finds that object from
its referring expression among the pipeline's objects (regionlm.model.grounding). All is shown next to the
ground truth: a table on stdout (or one JSON object with --json), and OUT/index.html with the rendered video
(ground truth | objects found | model track), the answers, the scores and the timings. Progress goes to stderr.

Questions and the description are asked exactly as the eval asks them (RegionLMSystem.answer on world-q /
world-d Samples of the written mp4: the same frame sampling, region key frame and prompts), and scored with the
eval's letter extraction and attribute checks.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

NUM_QUESTIONS = 4  # one per question type, in the order the world lists the types
SCALE = 4  # rendered frames are enlarged this much (64x64 -> 256x256)


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the model on a fresh RegionWorld video and compare it with the truth")
    p.add_argument("--out", default="demo_out", help="folder for the videos, the GIF and index.html")
    p.add_argument("--seed", type=int, default=None, help="default: a fresh random seed (printed)")
    p.add_argument("--model", default=None,
                   help="a saved RegionLM folder (default: the shipped model in regionlm/assets/default_model)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


class Phases:
    """Progress lines on stderr and the seconds each phase took."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str, line: str):
        print(f"demo: {line} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


def run(args) -> int:
    from .api import RegionLM
    from .video import write_gif, write_video
    from .world import WorldConfig, make_video
    from .world.generate import VIDEO_OPTIONS
    from .world.visualize import demo_html

    start = time.perf_counter()
    phase = Phases()
    # The model first: a missing or broken model is a one-line error before any work.
    with phase("load_model", f"loading the model{'' if args.model is None else ' from ' + str(args.model)}"):
        lm = RegionLM.load(args.model)
    seed = args.seed if args.seed is not None else secrets.randbelow(10**6)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    video = out / "video.mp4"
    with phase("video", f"generating a RegionWorld video (seed {seed})"):
        cfg = WorldConfig()
        _, r, notes = make_video(seed, "test", 0, cfg, video_path=video.name)
        gt = notes.ground_truth
        write_video(video, r.frames, fps=cfg.fps, options=VIDEO_OPTIONS)
    with phase("objects", "finding objects (classical detect-segment-track pipeline)"):
        found = find_objects(video)
        objects = compare_objects(found, gt)
    picked = pick_questions(notes.region_qa, lm.max_regions)
    with phase("questions", f"asking {len(picked)} region questions"):
        questions = [ask_question(lm, video, q) for q in picked]
    track_rec = pick_track(notes.sot)
    with phase("description", "describing an object"):
        description = describe(lm, video, pick_caption(notes.region_caption, track_rec["object_id"]), gt)
    with phase("tracking", f"tracking object {track_rec['object_id']} from its box on frame "
                           f"{track_rec['init_frame']}"):
        tracking = track(lm, video, track_rec)
    with phase("finding", f"finding object {track_rec['object_id']} from its expression"):
        finding = find_by_words(lm, video, found, objects, gt, track_rec)
    with phase("render", "rendering the video"):
        drawn = render(r.frames, gt, found.objects, tracking)
        mp4, gif = out / "demo.mp4", out / "demo.gif"
        write_video(mp4, drawn, fps=cfg.fps)
        write_gif(gif, drawn, fps=cfg.fps)
    right = sum(q["correct"] for q in questions)
    result = {
        "seed": seed, "model": lm.path, "video": str(video), "report": str(out / "index.html"),
        "rendered": [str(mp4), str(gif)], "questions": questions,
        "accuracy": round(right / len(questions), 4) if questions else None,
        "description": description, "tracking": tracking, "finding": finding, "objects": objects,
        "timings": {**phase.seconds, "total": round(time.perf_counter() - start, 3)},
    }
    demo_html(out / "index.html", gif, result, width=drawn.shape[2])
    print(f"demo: done in {result['timings']['total']:.1f} s", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(result))
    else:
        print_summary(result, gt)
    return 0


# ---------------------------------------------------------------------------------------------------- objects


def find_objects(video: Path):
    from .objects.pipeline import PipelineConfig, run_pipeline

    return run_pipeline(video, PipelineConfig())  # every part classical: no weights needed


def compare_objects(found, gt: dict) -> dict:
    """Found objects matched one-to-one to the true ones (Hungarian on mask IoU over the whole video, a match
    needs IoU >= 0.5). A true object counts when it is visible on some frame."""
    from .objects.pipeline import match
    from .regions import rle_to_mask

    T = gt["num_frames"]
    truth = []
    for o in gt["objects"]:
        masks = {t: rle_to_mask(f["segmentation"]) for t, f in enumerate(o["frames"][:T])
                 if f["segmentation"] is not None}
        if masks:
            truth.append((o, masks))
    pred = [{t: np.asarray(obj.masks[t], bool) for t in obj.masks} for obj in found.objects]
    iou = np.zeros((len(truth), len(pred)))
    for i, (_, a) in enumerate(truth):
        for j, b in enumerate(pred):
            inter = sum(int(np.count_nonzero(a[t] & b[t])) for t in a.keys() & b.keys())
            union = sum(int(a[t].sum()) for t in a) + sum(int(b[t].sum()) for t in b) - inter
            iou[i, j] = inter / union if union else 0.0
    pairs = dict(match(1.0 - iou, 0.5))
    rows = [{"id": o["id"], "what": f"{o['size']} {o['colour']} {o['shape']}",
             "found_as": found.objects[pairs[i]].id if i in pairs else None,
             "iou": round(float(iou[i, pairs[i]]), 3) if i in pairs else None} for i, (o, _) in enumerate(truth)]
    matched = set(pairs.values())
    extra = [{"id": obj.id, "label": obj.label, "frames": len(obj.masks)} for j, obj in enumerate(found.objects)
             if j not in matched]
    return {"found": len(found.objects), "true": len(truth), "matched": len(pairs), "truth": rows, "extra": extra}


# ---------------------------------------------------------------------------------------------------- model


def pick_questions(region_qa: list[dict], max_regions: int) -> list[dict]:
    """The first question of each type (as many types as NUM_QUESTIONS), among those the model can take."""
    picked, types = [], set()
    for q in region_qa:
        if q["type"] not in types and len(q["annotation"]) <= max_regions:
            picked.append(q)
            types.add(q["type"])
    return picked[:NUM_QUESTIONS]


def readable(question: str, object_ids: list) -> str:
    """The question with each ``<region>`` replaced by the object it stands for."""
    for obj in object_ids:
        question = question.replace("<region>", f"[object {obj}]", 1)
    return question


def ask_question(lm, video: Path, q: dict) -> dict:
    """One region question as world-q asks it (the eval's prompt, key frame and frame sampling), scored with
    the official letter extraction."""
    from .eval.benchmarks.base import Sample
    from .eval.benchmarks.choice import int_frame
    from .eval.metrics.multiple_choice import build_mc_prompt, extract_choice, gt_letter

    sample = Sample(id=q["id"], task="choice", video=str(video), prompt=build_mc_prompt(q["Question"], q["options"]),
                    options=tuple(q["options"]), regions=tuple(q["annotation"]), frame_idx=int_frame(q["frame_idx"]),
                    height=q.get("height"), width=q.get("width"))
    start = time.perf_counter()
    answer = lm.system.answer(sample)
    seconds = round(time.perf_counter() - start, 3)
    choice, truth = extract_choice(answer), gt_letter(q["Answer"])
    option = next((o for o in q["options"] if choice is not None and o.startswith(f"({choice})")), None)
    return {"id": q["id"], "type": q["type"], "question": readable(q["Question"], q["object_ids"]),
            "object_ids": q["object_ids"], "options": q["options"], "model_answer": answer, "model_choice": choice,
            "model_option": option, "gt_answer": q["Answer"], "gt_choice": truth,
            "correct": choice is not None and choice.upper() == truth.upper(), "seconds": seconds}


def pick_caption(captions: list[dict], object_id: int) -> dict:
    """The tracked object's description when it has one (the report then follows one object), else the first."""
    return next((c for c in captions if c["object_ids"][0] == object_id), captions[0])


def describe(lm, video: Path, rec: dict, gt: dict) -> dict:
    """One description as world-d asks it, with the world judge's attribute checks against the truth."""
    from .eval.benchmarks.base import Sample
    from .eval.benchmarks.choice import int_frame
    from .eval.benchmarks.world_d import DESCRIBE_PROMPT
    from .eval.metrics.world_judge import attribute_checks

    sample = Sample(id=rec["id"], task="caption", video=str(video), prompt=DESCRIBE_PROMPT,
                    regions=tuple(rec["annotation"]), frame_idx=int_frame(rec["frame_idx"]),
                    height=rec.get("height"), width=rec.get("width"))
    text = lm.system.answer(sample)
    obj = next(o for o in gt["objects"] if o["id"] == rec["object_ids"][0])
    return {"object_id": obj["id"], "model": text, "gt": rec["caption"],
            "attributes": attribute_checks(rec["caption"], text, obj)}


def pick_track(sot: list[dict]) -> dict:
    """The object whose true box travels farthest: tracking a still object shows little."""
    def travel(rec):
        centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in rec["boxes"] if b is not None]
        return sum(float(np.hypot(x2 - x1, y2 - y1)) for (x1, y1), (x2, y2) in zip(centres, centres[1:]))

    return max(sot, key=travel)  # max keeps the first of equals


def track(lm, video: Path, rec: dict) -> dict:
    """Track one object with the model from its true box on its first well-visible frame (world-sot's start);
    per-frame IoU with the true box after that frame, where the object is in view (no model box: IoU 0)."""
    from .regions import RegionPrompt, box_xywh_to_xyxy

    init = int(rec["init_frame"])
    start = RegionPrompt("box", init, box=tuple(float(v) for v in rec["boxes"][init]))
    boxes = [None if b is None else [round(float(v), 2) for v in box_xywh_to_xyxy(b)]
             for b in lm.track(str(video), region=start)]
    ious = track_ious(boxes, rec)
    scored = [v for v in ious if v is not None]
    return {"object_id": rec["object_id"], "init_frame": init, "init_box": list(rec["boxes"][init]),
            "mean_iou": mean_iou(ious), "frames_scored": len(scored),
            "iou": ious, "boxes": boxes, "gt_boxes": rec["boxes"], "absent": rec["absent"]}


def track_ious(boxes: list, rec: dict) -> list:
    """Per frame, the IoU of ``boxes`` (xyxy or None) with the record's true box after its init frame where the
    object is in view (no box: 0), else None (not scored)."""
    from .eval.metrics.boxes import box_iou_xyxy

    return [None if t <= rec["init_frame"] or truth is None or rec["absent"][t]
            else 0.0 if pred is None else round(box_iou_xyxy(pred, truth), 4)
            for t, (pred, truth) in enumerate(zip(boxes, rec["boxes"]))]


def mean_iou(ious: list):
    scored = [v for v in ious if v is not None]
    return round(sum(scored) / len(scored), 4) if scored else None


# ---------------------------------------------------------------------------------------------------- output


def render(frames: np.ndarray, gt: dict, found_objects: list, tracking: dict) -> np.ndarray:
    """Three panels per frame: the ground truth, the objects found, the model's track next to the true box."""
    from .world.visualize import draw_found_objects, draw_ground_truth, draw_track, side_by_side

    truth = [None if absent else box for box, absent in zip(tracking["gt_boxes"], tracking["absent"])]
    return side_by_side([
        ("ground truth", draw_ground_truth(frames, gt, SCALE)),
        ("objects found", draw_found_objects(frames, found_objects, SCALE)),
        (f"model tracking object {tracking['object_id']}",
         draw_track(frames, truth, tracking["boxes"], tracking["iou"], SCALE)),
    ])


def _cut(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "~"


def _marks() -> tuple[str, str]:
    try:
        "\u2713\u2717".encode(sys.stdout.encoding or "ascii")
        return "\u2713", "\u2717"
    except (UnicodeEncodeError, LookupError):
        return "ok", "x"


def find_by_words(lm, video: Path, found, objects: dict, gt: dict, rec: dict) -> dict:
    """The model picks, among the objects the pipeline found, the one the true referring expression of the
    tracked object (``rec``, its world-sot record) names; right when the pick is the found object matched to that
    true object. ``mean_iou``: the picked track's boxes against the true ones, on the frames ``track`` scores (the
    words replace the first box: referring tracking)."""
    from .model.grounding import ground_objects
    from .regions import mask_to_box

    object_id = rec["object_id"]
    expression = next(o["expression"] for o in gt["objects"] if str(o["id"]) == str(object_id))
    index, _ = ground_objects(lm.system, video, expression, found)
    picked = None if index is None else found.objects[index].id
    truth = next((row["found_as"] for row in objects["truth"] if str(row["id"]) == str(object_id)), None)
    masks = {} if index is None else found.objects[index].masks
    seen = set(masks)  # its frames, listed once (an RLE mask store would scan them per `in`)
    boxes = [list(map(float, mask_to_box(masks[t]))) if t in seen and np.any(masks[t]) else None
             for t in range(len(rec["boxes"]))]
    return {"object_id": object_id, "expression": expression, "picked": picked, "found_as": truth,
            "candidates": len(found.objects), "correct": picked is not None and picked == truth,
            "mean_iou": mean_iou(track_ious(boxes, rec))}


def print_summary(result: dict, gt: dict) -> None:
    yes, no = _marks()
    mark = lambda ok: yes if ok else no  # noqa: E731
    obj, d, tr, qs = result["objects"], result["description"], result["tracking"], result["questions"]
    print(f"RegionWorld video (seed {result['seed']}): {len(gt['objects'])} objects, {gt['num_frames']} frames "
          f"{gt['width']}x{gt['height']}; model {result['model']}")
    print(f"objects found: {obj['found']} (true {obj['true']}, matched {obj['matched']})")
    print(f"\n{'type':<13} {'question':<50} {'model':<30} truth")
    for q in qs:
        model = q["model_option"] or repr(q["model_answer"])
        print(f"{_cut(q['type'].replace(' Questions', ''), 13):<13} {_cut(q['question'], 50):<50} "
              f"{_cut(model, 30):<30} {_cut(q['gt_answer'], 30):<30} {mark(q['correct'])}")
    print(f"{sum(q['correct'] for q in qs)} of {len(qs)} right")
    print(f"\ndescription of object {d['object_id']}:\n  model: {_cut(d['model'], 300)!r}\n  truth: {d['gt']}")
    print("  attributes: " + ", ".join(f"{k} {mark(v)}" for k, v in d["attributes"].items()))
    miou = "-" if tr["mean_iou"] is None else f"{tr['mean_iou']:.3f}"
    print(f"\ntracking object {tr['object_id']} from its box on frame {tr['init_frame']}: mean IoU {miou} over "
          f"{tr['frames_scored']} frames")
    fd = result["finding"]
    fiou = "-" if fd["mean_iou"] is None else f"{fd['mean_iou']:.3f}"
    print(f"finding {fd['expression']!r} among {fd['candidates']} objects found: picked {fd['picked']}, "
          f"object {fd['object_id']} was found as {fd['found_as']} {mark(fd['correct'])}; the picked track's "
          f"mean IoU {fiou} over the same frames")
    print("\ntimings: " + ", ".join(f"{k} {v:.1f} s" for k, v in result["timings"].items()))
    print(f"report: {result['report']} (video: {', '.join(result['rendered'])})")
