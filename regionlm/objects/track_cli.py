"""`regionlm track VIDEO (--region SPEC | --expression TEXT)`: follow an object to the end of the video.

Backend ``model`` (the default): the RegionLM model (``--model DIR``, default the shipped one) gives a box per
frame; one object, given by one ``--region`` on its frame F or by a referring ``--expression`` (found from frame 0).
An object given by a region is followed by the model folder's pointer head (``--sot-mode point``; the default
``auto`` when the folder has one, as the shipped model does) or written as text, Elysium style, clip by clip
(``--sot-mode generate``). An object named by an expression is found on frame 0 by the folder's refer head and
the model's pick among its candidates, then followed by the pointer head (regionlm.model.refer; written as text
when the folder lacks the heads). The pointer head's boxes after the first are the classical segmenter's outline
of the object around them (``--outline on``, default; ``off``: the pointed box, of the first box's size; see
regionlm.model.outline). ``tracks.json`` then holds a ``box`` per frame and no
``segmentation``; frames where the model gives no box are left out.

Mask backends: each ``--region`` (``mask:first.png@F``, ``rle:mask.json@F``, ``box:x1,y1,x2,y2@F``,
``point:x,y@F``) is one object, id 1, 2, ... in the order given, tracked forward from its frame F (frames before it
are not tracked). Boxes and points are turned into a mask on frame F by the backend's segmenter. Output:
``tracks.json`` in the ``objects.json`` schema (regionlm.objects.io), every frame where the object is visible.
``--render`` draws the tracks on the video. Frames are read in chunks, so a long video runs in bounded memory.

Mask backends (``BACKENDS``): ``classical`` (no weights: DIS flow + re-segmentation, GrabCut for boxes) and ``hf``
(``--segmenter DIR``: a local SAM 2 / SAM 3 tracker *video* checkpoint, which also segments boxes and points).

``--expression`` with ``--backend classical``: the object pipeline tracks every object of the video and the
RegionLM model (``--model DIR``, default the shipped one) picks the one the words name (regionlm.model.grounding);
``tracks.json`` holds that object's masks, and ``--json`` every candidate's score.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from regionlm.errors import RegionLMError

CHUNK = 32  # frames decoded at a time


@dataclass(frozen=True)
class Backend:
    """How a backend builds its tracker and its box/point segmenter from the command line."""

    tracker: Callable
    segmenter: Callable
    needs_checkpoint: bool


def _part(kind: str, name: str, with_checkpoint: bool):
    from regionlm.objects.base import create

    def build(args):
        kwargs = {"checkpoint": args.segmenter, "device": args.device or "cpu"} if with_checkpoint else {}
        return create(kind, name, **kwargs)

    return build


BACKENDS: dict[str, Backend] = {
    "classical": Backend(_part("tracker", "classical", False), _part("segmenter", "classical", False), False),
    "hf": Backend(_part("tracker", "hf", True), _part("segmenter", "hf-sam", True), True),
}
MODEL_BACKEND = "model"  # boxes from the RegionLM model; BACKENDS are the mask trackers


def add_parser(sub) -> None:
    p = sub.add_parser("track", help="track regions given on a frame through the video -> tracks.json",
                       description=__doc__.split("\n\n", 1)[0])
    p.add_argument("video", help="video file or frame folder")
    p.add_argument("--region", action="append", metavar="SPEC",
                   help="an object to track: mask:PNG@F, rle:JSON@F, box:x1,y1,x2,y2@F or point:x,y@F (repeatable "
                        "with the mask backends; one with the model)")
    p.add_argument("--expression", metavar="TEXT",
                   help='track the object this names instead of a --region ("the small red star"): the model finds '
                        'it on frame 0 and follows it (backend model), or picks it among the object pipeline\'s '
                        'tracks (classical)')
    # Checked here rather than by argparse (choices) so that a wrong name is a one-line error like the others.
    p.add_argument("--backend", default=MODEL_BACKEND, metavar="NAME",
                   help=f"{MODEL_BACKEND} (default: boxes from the RegionLM model), or masks: classical (no "
                        "weights) or hf (needs --segmenter DIR)")
    p.add_argument("--model", metavar="DIR", help="model backend or --expression: a saved RegionLM model folder "
                                                  "(default: the shipped model)")
    p.add_argument("--sot-mode", default="auto", metavar="MODE",
                   help="model backend, a --region: point (the model's pointer head follows it), generate (the "
                        "model writes its boxes as text) or auto (point when the model folder has a pointer head, "
                        "default)")
    p.add_argument("--outline", default="on", metavar="on|off",
                   help="model backend, pointing: each box after the first is the classical segmenter's outline of "
                        "the object around the pointed box (on, default) or the pointed box, of the first box's "
                        "size (off)")
    p.add_argument("--segmenter", metavar="DIR", help="hf: a SAM 2 / SAM 3 tracker video checkpoint folder")
    p.add_argument("--device", default=None,
                   help="torch device (default: cpu for hf, CUDA when available for the model)")
    p.add_argument("--out", default="tracks.json", help="tracks file to write (default tracks.json)")
    p.add_argument("--render", metavar="OUT.mp4", help="also write the video with the tracks drawn on it")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=run_track)


def run_track(args) -> int:
    from regionlm.objects.io import render_objects, write_objects_json

    if args.backend != MODEL_BACKEND and args.backend not in BACKENDS:
        raise RegionLMError(f"--backend {args.backend!r}: unknown; available: {MODEL_BACKEND}, {', '.join(BACKENDS)}")
    if args.backend == MODEL_BACKEND:
        return run_model_track(args)
    for flag, value, default in (("--sot-mode", args.sot_mode, "auto"), ("--outline", args.outline, "on")):
        if value != default:
            raise RegionLMError(f"{flag} works only with --backend {MODEL_BACKEND}; --backend {args.backend} tracks "
                                "masks")
    if args.expression is not None:
        return run_grounded_track(args)
    for flag, value in (("--expression", args.expression), ("--model", args.model)):
        if value is not None:
            raise RegionLMError(f"{flag} works only with --backend {MODEL_BACKEND}; --backend {args.backend} "
                                "tracks the masks of --region")
    start = time.perf_counter()
    result, regions = track_video(args, progress=not args.json)
    out = write_objects_json(args.out, result)
    if args.render:
        render_objects(args.video, result, args.render, progress=not args.json)
    objects = [{"id": o.id, "region": str(r), "start_frame": r.frame, "frames": len(o.masks),
                "last_frame": max(o.masks) if len(o.masks) else None} for o, r in zip(result.objects, regions)]
    summary = {"video": str(args.video), "out": str(out), "render": args.render, "backend": args.backend,
               "num_frames": result.num_frames, "height": result.height, "width": result.width,
               "objects": objects, "timing": result.timing, "seconds": round(time.perf_counter() - start, 3)}
    if args.json:
        print(json.dumps(summary))
    else:
        for o in objects:
            print(f"object {o['id']} ({o['region']}): visible on {o['frames']} frames")
        print(f"{len(objects)} objects tracked over {result.num_frames - min(r.frame for r in regions)} frames "
              f"({result.timing['fps']} frames/s) -> {out}")
        if args.render:
            print(f"rendered -> {args.render}")
    return 0


def track_video(args, progress: bool = False):
    """Run the tracker over the video; returns (ObjectsResult, the parsed regions in id order)."""
    from regionlm.objects.base import ObjectsResult, ObjectTrack
    from regionlm.objects.io import RLEMasks
    from regionlm.regions import parse_region, prompt_to_mask, validate_frame
    from regionlm.video import VideoReader

    backend = BACKENDS.get(args.backend)
    if backend is None:
        raise RegionLMError(f"--backend {args.backend!r}: unknown; available: {MODEL_BACKEND}, {', '.join(BACKENDS)}")
    if backend.needs_checkpoint and not args.segmenter:
        raise RegionLMError(f"--backend {args.backend} needs --segmenter DIR (a local SAM 2 / SAM 3 tracker video "
                            "checkpoint folder)")
    if not backend.needs_checkpoint and args.segmenter:
        raise RegionLMError(f"--segmenter is a checkpoint folder for --backend hf; --backend {args.backend} needs "
                            "none")
    if not args.region:
        raise RegionLMError("give at least one --region (e.g. --region mask:first.png@0 or "
                            "--region box:10,20,110,90@0)")
    regions = [parse_region(spec) for spec in args.region]
    with VideoReader(args.video) as reader:
        H, W, N = reader.height, reader.width, reader.num_frames
        # Every region is checked (frame in range, file readable, mask size, not empty) before any tracking.
        given = []
        for r in regions:
            validate_frame(r, N)
            given.append(prompt_to_mask(r, H, W))
        tracker = backend.tracker(args)
        segmenter = backend.segmenter(args) if any(r.kind in ("box", "point") for r in regions) else None
        by_frame: dict[int, list[int]] = {}
        for k, r in enumerate(regions):
            by_frame.setdefault(r.frame, []).append(k)
        first = min(by_frame)
        tracks = [ObjectTrack(id=k + 1, label="object", score=1.0, masks=RLEMasks()) for k in range(len(regions))]
        bar = _progress(N - first, progress)
        t0, started = time.perf_counter(), False
        for s in range(first, N, CHUNK):
            idx = list(range(s, min(s + CHUNK, N)))
            for t, frame in zip(idx, reader.get_frames(idx)):
                new = {k + 1: _seed_mask(regions[k], given[k], frame, segmenter) for k in by_frame.get(t, [])}
                if not started:
                    tracker.start(frame, new)
                    masks, started = dict(new), True
                else:
                    masks = tracker.step(frame)
                    if new:
                        tracker.add(frame, new)
                        masks.update(new)
                for obj_id, m in masks.items():
                    tracks[obj_id - 1].masks[t] = np.asarray(m, bool)  # an empty mask stores nothing
                bar.update()
        bar.close()
        secs = time.perf_counter() - t0
    timing = {"track": round(secs, 3), "fps": round((N - first) / secs, 2) if secs > 0 else None}
    return ObjectsResult(video=str(args.video), height=H, width=W, num_frames=N, objects=tracks,
                         timing=timing), regions


def run_model_track(args) -> int:
    """The model backend: boxes per frame from the RegionLM model -> tracks.json with boxes only."""
    from regionlm.api import RegionLM, check_regions_fit, timed
    from regionlm.ask_cli import show_note
    from regionlm.objects.base import ObjectsResult, ObjectTrack
    from regionlm.objects.io import BoxTrack, render_objects, write_objects_json

    if args.segmenter:
        raise RegionLMError(f"--segmenter is a checkpoint folder for --backend hf; --backend {MODEL_BACKEND} needs "
                            "none (give --model DIR for another model)")
    regions = args.region or []
    expression = args.expression.strip() if args.expression is not None else None
    if expression is not None and not expression:
        raise RegionLMError("--expression is empty; name the object, e.g. --expression \"the small red star\"")
    if bool(regions) == (expression is not None):
        raise RegionLMError(f"--backend {MODEL_BACKEND} needs exactly one of --region (e.g. box:10,20,40,50@0) or "
                            "--expression")
    if len(regions) > 1:
        raise RegionLMError(f"--backend {MODEL_BACKEND} tracks one object: give one --region, got {len(regions)} "
                            "(the mask backends classical / hf take several)")
    from regionlm.model.inference import SOT_MODES

    if args.sot_mode not in SOT_MODES:
        raise RegionLMError(f"--sot-mode must be one of {', '.join(SOT_MODES)}, got {args.sot_mode!r}")
    if args.outline not in ("on", "off"):
        raise RegionLMError(f"--outline must be on or off, got {args.outline!r}")
    prompts, (N, H, W) = check_regions_fit(args.video, regions, name="--region")
    model = RegionLM.load(args.model, device=args.device, progress=False, sot_mode=args.sot_mode,
                          outline=args.outline == "on")
    note = show_note(model.video_note(H, W), args.json)
    xywh, secs = timed(model.track, args.video, region=prompts[0] if prompts else None, expression=expression)
    boxes = [None if b is None else [round(float(b[0]), 2), round(float(b[1]), 2), round(float(b[0] + b[2]), 2),
                                     round(float(b[1] + b[3]), 2)] for b in xywh]
    track = ObjectTrack(id=1, label=expression or "object", score=1.0,
                        masks=BoxTrack({t: b for t, b in enumerate(boxes) if b is not None}))
    first = prompts[0].frame if prompts else 0
    timing = {"track": secs, "fps": round((N - first) / secs, 2) if secs > 0 else None}
    result = ObjectsResult(video=str(args.video), height=H, width=W, num_frames=N, objects=[track], timing=timing)
    out = write_objects_json(args.out, result)
    if args.render:
        render_objects(args.video, result, args.render, progress=not args.json)
    what = {"region": regions[0]} if regions else {"expression": expression}
    mode = model.system.sot_mode if regions else model.system.rsot_mode
    if args.json:
        print(json.dumps({"video": str(args.video), "backend": MODEL_BACKEND, **what,
                          **({"sot_mode": mode} if regions else {"rsot_mode": mode}),
                          "outline": mode == "point" and model.system.outline is not None, "boxes": boxes,
                          "out": str(out), "render": args.render, "model": model.path, "seconds": secs,
                          "note": note}))
    else:
        print(f"{regions[0] if regions else repr(expression)}: a box on {len(track.masks)} of {N - first} frames "
              f"-> {out}")
        if args.render:
            print(f"rendered -> {args.render}")
    return 0


def run_grounded_track(args) -> int:
    """--expression with a mask backend: the object pipeline's tracks, the model picks the named one."""
    from regionlm.api import RegionLM, timed
    from regionlm.ask_cli import show_note
    from regionlm.model.grounding import ground_video
    from regionlm.objects.base import ObjectsResult, ObjectTrack
    from regionlm.objects.io import render_objects, write_objects_json
    from regionlm.video import VideoReader

    if args.backend != "classical":
        raise RegionLMError(f"--expression works with --backend {MODEL_BACKEND} or classical (the object pipeline "
                            f"finds the candidates), not {args.backend}")
    if args.region or args.segmenter:
        raise RegionLMError("give --expression or --region, not both" if args.region else
                            "--segmenter is a checkpoint folder for --backend hf; classical needs none")
    expression = args.expression.strip()
    if not expression:
        raise RegionLMError("--expression is empty; name the object, e.g. --expression \"the small red star\"")
    with VideoReader(args.video) as reader:  # a missing or unreadable video fails here, before the model loads
        H, W = reader.height, reader.width
    model = RegionLM.load(args.model, device=args.device, progress=False)
    note = show_note(model.video_note(H, W), args.json)
    (found, index, scores), secs = timed(ground_video, model.system, args.video, expression)
    picked = [] if index is None else [found.objects[index]]
    tracks = [ObjectTrack(id=1, label=expression, score=o.score, masks=o.masks) for o in picked]
    result = ObjectsResult(video=str(args.video), height=found.height, width=found.width,
                           num_frames=found.num_frames, objects=tracks, timing={"seconds": secs})
    out = write_objects_json(args.out, result)
    if args.render:
        render_objects(args.video, result, args.render, progress=not args.json)
    candidates = [{"pipeline_id": o.id, "score": None if not np.isfinite(sc) else round(float(sc), 4),
                   "frames": len(list(o.masks))} for o, sc in zip(found.objects, scores)]
    frames = len(list(tracks[0].masks)) if tracks else 0
    if args.json:
        print(json.dumps({"video": str(args.video), "backend": args.backend, "expression": expression,
                          "picked": None if index is None else found.objects[index].id, "candidates": candidates,
                          "frames": frames, "out": str(out), "render": args.render, "model": model.path,
                          "seconds": secs, "note": note}))
    else:
        if index is None:
            print(f"{expression!r}: the object pipeline found no object -> {out}")
        else:
            print(f"{expression!r}: object {found.objects[index].id} of {len(found.objects)} found, visible on "
                  f"{frames} of {found.num_frames} frames -> {out}")
        if args.render:
            print(f"rendered -> {args.render}")
    return 0


def _seed_mask(region, mask: np.ndarray, frame: np.ndarray, segmenter) -> np.ndarray:
    """The mask an object starts from: the given mask, or the segmenter's mask for a box / points (the prompt's
    own box / disks when the segmenter finds nothing there)."""
    if region.kind == "box":
        seg = segmenter.segment(frame, boxes=np.array([region.box], np.float64))
    elif region.kind == "point":
        seg = segmenter.segment(frame, points=np.array(region.points, np.float64))
    else:
        return mask
    seg = np.asarray(seg, bool).any(axis=0)
    return seg if seg.any() else mask


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="track", unit="frame", file=sys.stderr, disable=not enabled, dynamic_ncols=True)


__all__ = ["add_parser", "run_track", "run_model_track", "run_grounded_track", "track_video", "BACKENDS",
           "MODEL_BACKEND"]
