"""`regionlm fit-pointer`: fit a model's pointer head (regionlm.model.pointer) on tracking sequences, and its
refer head (regionlm.model.refer) on RegionWorld referring-tracking ones.

    regionlm fit-pointer --data DIR [--benchmark world-sot|lasot|vot] [--model DIR] [--heads pointer,refer]
                         [--steps N] [--refer-steps N] [--max-frames N] [--limit N] [--video-root DIR]
                         [--threads N] [--device DEV] [--json]

Reads the sequences (their videos and truth boxes) of a tracking benchmark's data, runs the model's vision tower on
them once (frozen), fits the head and writes it into the model folder as ``pointer_head.safetensors`` (temp file,
then rename), where ``track`` from a box, ``regionlm eval --benchmark world-sot`` and ``regionlm track --region``
find it. On RegionWorld data (world-sot, the default) it also fits the refer head on the first frames of the
folder's world-rsot sequences (``refer_head.safetensors``: ``track`` from an expression, ``regionlm eval
--benchmark world-rsot`` and ``regionlm track --expression`` find the object with it, and the pointer head follows
it); ``--heads`` fits one of the two alone. The shipped heads were fitted on 200 RegionWorld train videos of
seed 5 (``regionlm world generate DIR --split train --seed 5 --num-videos 200``), which no training run streams;
``benchmarks/pointer_tracker.py`` does the same for the pointer head and scores it on validation videos.
"""

from __future__ import annotations

import json
import sys
import time

from ..errors import RegionLMError

TRACKING_BENCHMARKS = ("world-sot", "lasot", "vot")
HEADS = ("pointer", "refer")


def add_parser(sub) -> None:
    p = sub.add_parser("fit-pointer", help="fit a model's pointer head (tracking from a box) on tracking sequences",
                       description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--data", required=True, metavar="DIR", help="the tracking benchmark's data (a RegionWorld "
                                                                "split for world-sot)")
    p.add_argument("--benchmark", default="world-sot", metavar="NAME",
                   help=f"the data's format: {', '.join(TRACKING_BENCHMARKS)} (default world-sot)")
    p.add_argument("--model", metavar="DIR", help="the RegionLM folder to fit it for and write it into (default: "
                                                  "the shipped model)")
    from ..train.config import PointerSpec  # the shipped head's recipe

    p.add_argument("--steps", default=str(PointerSpec.steps), metavar="N",
                   help=f"fit steps (default {PointerSpec.steps})")
    p.add_argument("--refer-steps", default=str(PointerSpec.refer_steps), metavar="N",
                   help=f"refer head fit steps (default {PointerSpec.refer_steps})")
    p.add_argument("--heads", metavar="LIST", help="the heads to fit: pointer, refer or pointer,refer (default: both "
                                                   "on world-sot data, the pointer head on other data)")
    p.add_argument("--max-frames", default="16", metavar="N", help="the first N frames of each sequence (default 16)")
    p.add_argument("--limit", metavar="N", help="the first N sequences only")
    p.add_argument("--video-root", metavar="DIR", help="resolve the data's relative video paths under DIR")
    p.add_argument("--threads", default="2", metavar="N", help="torch threads (default 2)")
    p.add_argument("--device", help="torch device for the vision tower and the fit (default: CUDA when available)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _positive(value: str, flag: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise RegionLMError(f"{flag} must be a positive integer, got {value!r}")
    return n


def run(args) -> int:
    import torch

    from ..api import default_model_dir
    from ..eval.benchmarks import BenchmarkOptions, get_benchmark
    from .inference import load_model
    from .pointer import PointerConfig, save_pointer
    from .pointer_fit import fit_pointer, fit_world_refer, sequence_features
    from .refer import save_refer

    if args.benchmark not in TRACKING_BENCHMARKS:
        raise RegionLMError(f"--benchmark must be one of {', '.join(TRACKING_BENCHMARKS)}, got {args.benchmark!r}")
    world = args.benchmark == "world-sot"
    heads = [h.strip() for h in (args.heads or ("pointer,refer" if world else "pointer")).split(",") if h.strip()]
    if not heads or any(h not in HEADS for h in heads):
        raise RegionLMError(f"--heads must list {' and/or '.join(HEADS)}, got {args.heads!r}")
    if "refer" in heads and not world:
        raise RegionLMError(f"--heads refer: the refer head is fitted on RegionWorld referring tracking (world-sot "
                            f"data), not {args.benchmark}")
    steps, max_frames = _positive(args.steps, "--steps"), _positive(args.max_frames, "--max-frames")
    refer_steps = _positive(args.refer_steps, "--refer-steps")
    limit = _positive(args.limit, "--limit") if args.limit is not None else None
    torch.set_num_threads(_positive(args.threads, "--threads"))
    start = time.perf_counter()
    tracks = get_benchmark(args.benchmark)(BenchmarkOptions(data=args.data, video_root=args.video_root)).load()
    tracks = [t for t in tracks if t.sample.init_box is not None][:limit]
    if not tracks:
        raise RegionLMError(f"--data {args.data}: no tracking sequences with a first box")
    folder = args.model or default_model_dir()
    model, processor = load_model(folder)
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model.to(device)
    except (RuntimeError, AssertionError) as e:
        raise RegionLMError(f"--device {args.device}: {str(e).splitlines()[0]}") from None

    def log(msg):
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    summary = {"model": str(folder), "benchmark": args.benchmark, "data": str(args.data), "device": str(device)}
    if "pointer" in heads:
        data = sequence_features(model, tracks, max_frames=max_frames, log=log)
        head = fit_pointer(data, PointerConfig(), steps=steps, log=log, device=device)
        summary.update(pointer=str(save_pointer(head, folder)), sequences=len(tracks),
                       frames=int(data.present.sum()), steps=steps, weights=sum(p.numel() for p in head.parameters()))
    if "refer" in heads:
        head, fitted = fit_world_refer(model, processor.tokenizer, args.data, refer_steps, limit=limit,
                                       video_root=args.video_root, device=device, log=log)
        summary["refer"] = {"path": str(save_refer(head, folder)), "sequences": fitted, "steps": refer_steps,
                            "weights": sum(p.numel() for p in head.parameters())}
    summary["seconds"] = round(time.perf_counter() - start, 1)
    if args.json:
        print(json.dumps(summary))
    else:
        if "pointer" in summary:
            print(f"pointer head: fitted on {summary['sequences']} sequences ({summary['frames']} frames with the "
                  f"object) -> {summary['pointer']}")
        if "refer" in summary:
            print(f"refer head: fitted on the first frames of {summary['refer']['sequences']} referring-tracking "
                  f"sequences -> {summary['refer']['path']}")
        print(f"{summary['seconds']} s")
    return 0
