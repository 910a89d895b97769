"""`regionlm objects VIDEO ...`: every object of a video as tracks (objects.json); also registers `regionlm track`.

Backends:
- ``classical`` (default): no weights; class-agnostic proposals (label "object"), ``--prompt`` is ignored.
- ``hf``: ``--detector DIR`` an OWLv2 or Grounding DINO checkpoint folder (needs ``--prompt``); ``--segmenter DIR``
  a SAM / SAM 2 folder (optional: the classical segmenter otherwise). A SAM 2 *video* checkpoint
  (``model_type`` ``sam2_video``) as ``--segmenter`` also tracks; otherwise the classical tracker tracks.
More objects than ``--max-objects``: the highest scoring are kept (documented in regionlm.objects.pipeline).
No objects found: an empty ``objects`` list (not an error).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from regionlm.errors import RegionLMError

KEYFRAME_SPLITTERS = ("videoorion", "uniform", "none")
VIDEO_TRACKER_TYPES = ("sam2_video", "sam3_tracker_video")  # checkpoints the hf tracker can run


def add_parser(sub) -> None:
    p = sub.add_parser("objects", help="detect, segment and track every object of a video -> objects.json",
                       description=__doc__.split("\n\n", 1)[0])
    p.add_argument("video", help="video file or frame folder")
    p.add_argument("--backend", choices=("classical", "hf"), default="classical")
    p.add_argument("--detector", metavar="DIR", help="hf: OWLv2 / Grounding DINO checkpoint folder")
    p.add_argument("--segmenter", metavar="DIR", help="hf: SAM / SAM 2 checkpoint folder (optional)")
    p.add_argument("--device", default="cpu", help="hf: torch device (default cpu)")
    p.add_argument("--prompt", default=None, help='text prompts for hf detectors, comma separated: "person, ball"')
    p.add_argument("--max-objects", type=int, default=64, help="keep at most this many objects (highest scores)")
    p.add_argument("--keyframes", choices=KEYFRAME_SPLITTERS, default="videoorion",
                   help="key-frame splitter (default videoorion: theta_a=3, theta_b=2)")
    p.add_argument("--num-keyframes", type=int, default=4, help="k for --keyframes uniform")
    p.add_argument("--detect-every", type=int, default=1, help="run the detector on every n-th frame")
    p.add_argument("--out", required=True, help="objects.json to write")
    p.add_argument("--render", metavar="OUT.mp4", help="also write the video with the objects drawn on it")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=run_objects)
    import importlib

    try:  # `regionlm track` lives in its own module (written separately); registered here when present
        track_cli = importlib.import_module("regionlm.objects.track_cli")
    except ModuleNotFoundError as err:
        if err.name != "regionlm.objects.track_cli":
            raise
    else:
        track_cli.add_parser(sub)


def _model_type(folder: str, flag: str) -> str:
    path = Path(folder).expanduser()
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type", "")
    except FileNotFoundError:
        raise RegionLMError(f"{flag} {folder}: not a checkpoint folder (no config.json)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise RegionLMError(f"{flag} {folder}: cannot read config.json ({err})") from None


def build_config(args):
    from regionlm.objects.pipeline import PipelineConfig

    prompts = [p.strip() for p in args.prompt.split(",") if p.strip()] if args.prompt else None
    if args.max_objects < 1:
        raise RegionLMError(f"--max-objects must be at least 1, got {args.max_objects}")
    if args.detect_every < 1:
        raise RegionLMError(f"--detect-every must be at least 1, got {args.detect_every}")
    if args.num_keyframes < 1:
        raise RegionLMError(f"--num-keyframes must be at least 1, got {args.num_keyframes}")
    cfg = PipelineConfig(splitter=args.keyframes, max_objects=args.max_objects, detect_every=args.detect_every,
                         prompts=prompts, progress=not args.json)
    if args.keyframes == "uniform":
        cfg.splitter_options = {"k": args.num_keyframes}
    if args.backend == "classical":
        for flag in ("detector", "segmenter"):
            if getattr(args, flag):
                raise RegionLMError(f"--{flag} is a checkpoint folder for --backend hf; the classical backend "
                                    "needs none")
        return cfg
    if not args.detector:
        raise RegionLMError("--backend hf needs --detector DIR (a local OWLv2 or Grounding DINO checkpoint folder)")
    if not prompts:
        raise RegionLMError('--backend hf needs --prompt with the object names to find, e.g. --prompt "person, ball"')
    cfg.detector, cfg.detector_options = "hf", {"checkpoint": args.detector, "device": args.device}
    if args.segmenter:
        cfg.segmenter, cfg.segmenter_options = "hf-sam", {"checkpoint": args.segmenter, "device": args.device}
        if _model_type(args.segmenter, "--segmenter") in VIDEO_TRACKER_TYPES:
            cfg.tracker, cfg.tracker_options = "hf", {"checkpoint": args.segmenter, "device": args.device}
    return cfg


def run_objects(args) -> int:
    from regionlm.objects.io import render_objects, write_objects_json
    from regionlm.objects.pipeline import ObjectPipeline

    cfg = build_config(args)
    if args.backend == "classical" and cfg.prompts and not args.json:
        print("note: the classical backend is class-agnostic; --prompt is ignored", file=sys.stderr)
    start = time.perf_counter()
    result = ObjectPipeline(cfg).run(args.video)
    out = write_objects_json(args.out, result)
    if args.render:
        render_objects(args.video, result, args.render, progress=not args.json)
    summary = {"video": str(args.video), "out": str(out), "render": args.render, "backend": args.backend,
               "num_frames": result.num_frames, "height": result.height, "width": result.width,
               "objects": len(result.objects),
               "frames_per_object": [len(o.masks) for o in result.objects],
               "keyframes": result.timing.get("keyframes"), "timing": result.timing,
               "seconds": round(time.perf_counter() - start, 3)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{len(result.objects)} objects in {result.num_frames} frames ({result.timing.get('fps')} frames/s, "
              f"{result.timing.get('keyframes')} key frames) -> {out}")
        if args.render:
            print(f"rendered -> {args.render}")
    return 0
