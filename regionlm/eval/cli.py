"""`regionlm eval`: score a system on a benchmark.

    regionlm eval --benchmark NAME [--data PATH] [--video-root DIR]
                  [--model DIR | --tracker NAME | --predictions FILE | --baseline random|first-frame]
                  --out DIR [--limit N] [--seed S] [--choice-mode rank|generate]
                  [--rsot-mode auto|generate|ground|point] [--sot-mode auto|generate|point] [--caption-beams N]
                  [--region-propagation classical|off] [--objects pipeline|truth|regions]
                  [--caption-loop-guard on|off] [--region-mode single|multi] [--outline on|off]
                  [--json]
    regionlm eval --list

Writes OUT/results.json, OUT/report.md, plots and the per-sample cache OUT/predictions.jsonl (a rerun resumes
from it), then prints a short table (with --json only ``{"benchmark", "metrics", "num_samples"}``). Every argument
problem is a one-line error (exit 2): arguments are checked here rather than by argparse for that reason.

Without a system option the shipped default model is evaluated. --model and --tracker are served by backends: ``regionlm.model.load_eval_system(path, benchmark=...)`` and
``regionlm.objects.load_eval_tracker(name, benchmark=...)`` return a System (see benchmarks.base); until they
exist the options say so in one line.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from ..errors import RegionLMError

SYSTEM_OPTIONS = ("model", "tracker", "predictions", "baseline")


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the `eval` command on an argparse subparsers object."""
    p = sub.add_parser("eval", help="evaluate a model, tracker, baseline or predictions file on a benchmark",
                       description="Evaluate a system on a benchmark; `regionlm eval --list` lists the benchmarks.")
    p.add_argument("--benchmark", metavar="NAME", help="the benchmark (see --list)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--data", metavar="PATH", help="the dataset: a RegionWorld folder, a benchmark JSON file or a "
                                                  "folder of sequences (see --list)")
    p.add_argument("--video-root", metavar="DIR", help="resolve the data's relative video paths under DIR")
    who = p.add_argument_group("the system to evaluate (one of)")
    who.add_argument("--model", metavar="DIR", help="a RegionLM checkpoint folder")
    who.add_argument("--tracker", metavar="NAME", help="an object-pipeline tracker (tracking and VOS benchmarks)")
    who.add_argument("--predictions", metavar="FILE",
                     help='score another system\'s outputs: JSONL lines {"id", "prediction"} (text tasks; world-q '
                          'also <id>@lookalike), {"id", "boxes": [[x,y,w,h],...]} (tracking) or {"id", "masks"} '
                          '(davis)')
    who.add_argument("--baseline", metavar="NAME", help="a reference baseline: random (text tasks) or first-frame "
                                                        "(tracking, VOS)")
    p.add_argument("--out", metavar="DIR", help="output folder (results.json, report.md, plots, cache)")
    p.add_argument("--limit", metavar="N", help="evaluate the first N samples only")
    p.add_argument("--seed", metavar="S", default="0", help="seed of the random baseline (default 0)")
    p.add_argument("--choice-mode", metavar="MODE", default="rank",
                   help="multiple choice with a model: rank (answer the option the model finds most likely, "
                        "default) or generate (greedy text, the letter read from it)")
    p.add_argument("--rsot-mode", metavar="MODE", default="auto",
                   help="referring tracking with a model: generate (the model writes a box per frame, Elysium's "
                        "protocol), ground (the object pipeline tracks every object, the model picks the one "
                        "named), point (the model folder's refer head finds it on the first frame, its pointer "
                        "head follows it) or auto (point when the folder has both heads, default)")
    p.add_argument("--sot-mode", metavar="MODE", default="auto",
                   help="tracking from a first box with a model: generate (the model writes a box per frame, "
                        "Elysium's protocol), point (the model folder's pointer head points at the object on each "
                        "frame) or auto (point when the folder has a pointer head, default)")
    p.add_argument("--outline", metavar="on|off", default="on",
                   help="tracking by pointing (sot/rsot mode point): each box after the first is the classical "
                        "segmenter's outline of the object around the pointed box (on, default) or the pointed "
                        "box, of the first box's size (off)")
    p.add_argument("--caption-beams", metavar="N", default="3",
                   help="descriptions and referring expressions with a model: beam search width (1: greedy; "
                        "default 3)")
    p.add_argument("--region-propagation", metavar="MODE", default="classical",
                   help="descriptions with a model: classical (the region given on one frame is followed to the "
                        "clip's other frames by the classical tracker, default) or off (its given frame only)")
    p.add_argument("--region-mode", metavar="MODE", default="single",
                   help="regions with a model: single (each region shown on its key frame, VideoRefer-Bench-Q's "
                        "single-frame mode, default) or multi (on every frame its annotation has a mask)")
    p.add_argument("--objects", metavar="SOURCE", default="pipeline",
                   help="the object list of a model with one (object_tokens, object_list): pipeline (the classical "
                        "detect-segment-track pipeline's tracks on the clip, default), truth (a RegionWorld split's "
                        "true masks) or regions (the prompt's own regions)")
    p.add_argument("--caption-loop-guard", metavar="MODE", default="on",
                   help="descriptions and referring expressions with a model: on (never write a span of text three "
                        "times in a row, default) or off")
    p.add_argument("--no-java", action="store_true", help="caption metrics without Java: the pure-Python PTB "
                                                         "tokenizer approximation, METEOR unavailable")
    p.add_argument("--judge-url", metavar="URL", help="videorefer-d: an OpenAI-compatible judge endpoint")
    p.add_argument("--judge-model", metavar="NAME", help="videorefer-d: the judge model name at --judge-url")
    p.add_argument("--judge-hf", metavar="DIR", help="videorefer-d: a local Hugging Face causal LM as judge")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=run)
    return p


def _int(text, name: str, minimum: int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise RegionLMError(f"{name} must be an integer, got {text!r}") from None
    if value < minimum:
        raise RegionLMError(f"{name} must be at least {minimum}, got {value}")
    return value


def list_benchmarks() -> str:
    from .benchmarks import BENCHMARKS

    width = max(len(n) for n in BENCHMARKS)
    return "\n".join(f"{n:<{width}}  {cls.task:<8} {cls.summary}\n{'':<{width}}  {'':<8} --data: {cls.data_help}"
                     for n, cls in sorted(BENCHMARKS.items()))


def _backend(module: str, attr: str, what: str):
    """A later issue's entry point, or a one-line error saying it is not installed yet."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is not None and module.startswith(err.name):
            mod = None
        else:
            raise RegionLMError(f"the {what} backend cannot be imported: {err}") from None
    fn = getattr(mod, attr, None) if mod is not None else None
    if fn is None:
        raise RegionLMError(f"no {what} backend is installed yet ({module}.{attr} is missing); score a predictions "
                            f"file with --predictions FILE.jsonl or use --baseline random|first-frame")
    return fn


def make_system(args, bench):
    from .baselines import PredictionsFile, make_baseline

    given = [n for n in SYSTEM_OPTIONS if getattr(args, n, None)]
    if len(given) > 1:
        raise RegionLMError(f"give only one of --model, --tracker, --predictions, --baseline (got "
                            f"{', '.join('--' + n for n in given)})")
    if not given:  # the shipped default model
        from ..api import default_model_dir

        if bench.task == "segment":
            raise RegionLMError(f"{bench.name} scores masks: give --tracker NAME, --predictions FILE.jsonl or "
                                f"--baseline first-frame")
        return load_model_system(args, default_model_dir(), bench)
    kind = given[0]
    if kind == "predictions":
        return PredictionsFile(args.predictions, bench)
    if kind == "baseline":
        return make_baseline(args.baseline, bench, _int(args.seed, "--seed", 0))
    if kind == "tracker":
        if bench.task not in ("track", "segment"):
            raise RegionLMError(f"--tracker applies to tracking and VOS benchmarks, not {bench.name}")
        return _backend("regionlm.objects", "load_eval_tracker", "tracker")(args.tracker, benchmark=bench)
    return load_model_system(args, args.model, bench)


def load_model_system(args, path, bench):
    """The model backend's System with the command line's RegionLMSystem options (checked here: one-line
    errors; the defaults are the parser's)."""
    from ..model.inference import CHOICE_MODES, OBJECT_SOURCES, REGION_MODES, RSOT_MODES, SOT_MODES
    from ..model.propagation import PROPAGATIONS

    options = {"choice_mode": args.choice_mode, "rsot_mode": args.rsot_mode, "sot_mode": args.sot_mode,
               "region_propagation": args.region_propagation, "region_mode": args.region_mode,
               "objects": args.objects}
    for key, allowed in (("choice_mode", CHOICE_MODES), ("rsot_mode", RSOT_MODES), ("sot_mode", SOT_MODES),
                         ("region_propagation", PROPAGATIONS), ("region_mode", REGION_MODES),
                         ("objects", OBJECT_SOURCES)):
        if options[key] not in allowed:
            raise RegionLMError(f"--{key.replace('_', '-')} must be one of {', '.join(allowed)}, got "
                                f"{options[key]!r}")
    options["caption_beams"] = _int(args.caption_beams, "--caption-beams", 1)
    if args.caption_loop_guard not in ("on", "off"):
        raise RegionLMError(f"--caption-loop-guard must be on or off, got {args.caption_loop_guard!r}")
    options["caption_loop_guard"] = args.caption_loop_guard == "on"
    if args.outline not in ("on", "off"):
        raise RegionLMError(f"--outline must be on or off, got {args.outline!r}")
    options["outline"] = args.outline == "on"
    return _backend("regionlm.model", "load_eval_system", "model")(path, benchmark=bench, **options)


def make_judge(args, bench):
    """The judge of videorefer-d from --judge-url/--judge-model or --judge-hf (None when none is given)."""
    import os

    from .metrics.judge import HFCausalLMJudge, OpenAICompatibleJudge

    if not (args.judge_url or args.judge_model or args.judge_hf):
        return None
    if bench.name != "videorefer-d":
        raise RegionLMError(f"--judge-url/--judge-model/--judge-hf apply to videorefer-d only"
                            f"{' (world-d has its own deterministic judge)' if bench.name == 'world-d' else ''}")
    if args.judge_hf:
        if args.judge_url or args.judge_model:
            raise RegionLMError("give either --judge-hf DIR or --judge-url URL --judge-model NAME, not both")
        judge = HFCausalLMJudge(args.judge_hf)
        judge.name = f"hf:{args.judge_hf}"
        return judge
    if not (args.judge_url and args.judge_model):
        raise RegionLMError("an HTTP judge needs both --judge-url URL and --judge-model NAME")
    judge = OpenAICompatibleJudge(args.judge_url, args.judge_model, api_key=os.environ.get("OPENAI_API_KEY"))
    judge.name = f"{args.judge_model} at {args.judge_url}"
    return judge


def run(args) -> int:
    from .benchmarks import BenchmarkOptions, get_benchmark
    from .report import format_table
    from .runner import evaluate

    if args.list:
        print(list_benchmarks())
        return 0
    if not args.benchmark:
        from .benchmarks import BENCHMARKS

        raise RegionLMError(f"give --benchmark NAME, one of: {', '.join(sorted(BENCHMARKS))}")
    cls = get_benchmark(args.benchmark)
    if not args.out:
        raise RegionLMError("give --out DIR: the folder for results.json, report.md, plots and the cache")
    limit = _int(args.limit, "--limit", 1) if args.limit is not None else None
    seed = _int(args.seed, "--seed", 0)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RegionLMError(f"--out {out} is a file; give a folder")
    options = BenchmarkOptions(data=Path(args.data) if args.data else None,
                               video_root=Path(args.video_root) if args.video_root else None,
                               use_java=False if args.no_java else None, judge_cache=out / "judge_replies.jsonl")
    bench = cls(options)
    options.judge = make_judge(args, bench)
    if options.data is not None and not options.data.exists():
        raise RegionLMError(f"--data {options.data}: no such file or folder ({cls.name} needs {cls.data_help})")
    system = make_system(args, bench)
    config = {
        "benchmark": cls.name,
        "data": str(options.data.resolve()) if options.data else None,
        "video_root": str(options.video_root.resolve()) if options.video_root else None,
        "limit": limit,
        "seed": seed,
        "system": system.config,
        "caption_tokenizer": "python" if args.no_java else "java if available",
        "judge": getattr(options.judge, "name", None),
    }
    results = evaluate(bench, system, out, limit=limit, progress=not args.json, config=config)
    if args.json:
        print(json.dumps({"benchmark": cls.name, "metrics": results["metrics"], "num_samples": results["num_samples"]},
                         ensure_ascii=False))
    else:
        print(f"wrote {out / 'results.json'} and {out / 'report.md'}")
        print(format_table(results))
    return 0
