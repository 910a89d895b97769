"""The seeds' methods on equal terms: the same small RegionLM trained with each region encoder and each connector.

Every variant is configs/small.yaml with one change (the model options below), the same data stream, seed,
tokenizer and number of steps (--budget), then scored with `regionlm eval` on the same held-out test split:
  world-q   region multiple choice (overall) and region_swap (does the answer follow the region?), and how often
            the swapped region left the answer unchanged
  world-sot single-object tracking from a first-frame box (success AUC)
  world-vqa video-level questions (overall)
and region MC against mask_pool on the same questions (paired bootstrap, 95% interval).
Variants (one per line of VARIANTS): token_mark with / without the guide head, mask_pool with / without the
temporal merge, object_tokens, roi_box, text_coords, visual_marks (all on the pool connector, 128 context tokens
for 8 frames), then the connectors with the base's mask_pool: t_selector at the pool's budget (16 tokens per
frame), and stc against t_selector at half of it (64 tokens: stc merges frame pairs; t_selector keeps 8 tokens per
frame).

--backbone-steps N puts every variant on the footing the papers start from, a pretrained vision tower and LM:
the base config is first trained N steps on the tasks whose prompts carry no region (video questions,
referring expression -> box, referring tracking), once; its vision tower and LM are saved as plain Hugging Face
folders and every variant loads them (`model.vision_path` / `lm_path`, the real path's loader), with a fresh
region encoder, connector and heads, then trains --budget steps on the full task mix at a peak rate of 5e-4 (the
default config's stage-2 restart). From random weights grounding starts only after ~1,000 steps (docs/RESULTS.md);
on a backbone a variant's budget goes to the region part. Every variant still gets the same data, steps and
starting weights.

A variant whose model is already trained (OUT/runs/NAME/final) is not trained again; a training run that was cut
off resumes from its last checkpoint (every 300 steps, and the step it was on when a SIGTERM or Ctrl-C stopped
the script: the runs under way are passed the signal and waited for); evaluations resume from their caches. So
the script can be run again and again under a time limit per command until every variant is done
(scripts/lent_gpu_compare.sh does that on a lent GPU). --jobs N trains and evaluates N
variants at once. Prints the table, writes OUT/compare_encoders.json and OUT/compare_encoders.md, and with --doc
FILE puts the table into FILE between the markers <!-- compare_encoders:start --> and <!-- compare_encoders:end -->
(with --backbone-steps: <!-- compare_encoders_backbone:start --> ... end; with --seed N: ..._seedN). Under the
table, the papers' claims (CLAIMS), each judged by a paired difference between two variants, per training seed
and pooled over the seeds given with --also. --report rebuilds the table from what OUT holds without training or
evaluating (results brought back from a GPU machine).

    python benchmarks/compare_encoders.py [--budget 3600] [--only token_mark,roi_box] [--videos 200]
        [--limit-q 400] [--limit-track 100] [--limit-vqa 200] [--out benchmarks/results/compare_encoders]
        [--threads N] [--jobs N] [--backbone-steps N] [--backbone-workers N] [--seed N] [--also OUT ...]
        [--report] [--doc docs/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from regionlm.data.io import atomic_write_text  # noqa: E402

# name -> (RegionLMConfig overrides of configs/small.yaml, what it stands for)
VARIANTS = {
    "token_mark": ({"region_encoder": "token_mark", "guide_head": True}, "Omni-RGPT Token Marks + guide head"),
    "token_mark-noguide": ({"region_encoder": "token_mark", "guide_head": False}, "Token Marks, no guide head"),
    "mask_pool": ({"region_encoder": "mask_pool", "temporal_merge": True}, "VideoRefer mask pooling + merge"),
    "mask_pool-nomerge": ({"region_encoder": "mask_pool", "temporal_merge": False}, "mask pooling, no merge"),
    "object_tokens": ({"region_encoder": "object_tokens"}, "VideoOrion object tokens"),
    "roi_box": ({"region_encoder": "roi_box"}, "baseline: RoI box features"),
    "text_coords": ({"region_encoder": "text_coords"}, "baseline: box as text (Elysium)"),
    "visual_marks": ({"region_encoder": "visual_marks"}, "baseline: marks drawn on frames"),
    "t_selector-128": ({"connector": "t_selector", "t_selector_keep": 16}, "T-Selector, 16 tokens/frame"),
    "stc-64": ({"connector": "stc", "stc_temporal_stride": 2}, "STC (frame pairs merged), 64 tokens"),
    "t_selector-64": ({"connector": "t_selector", "t_selector_keep": 8}, "T-Selector, 8 tokens/frame"),
}
EVALS = [("world-q", "limit_q", ("overall", "region_swap")), ("world-sot", "limit_track", ("auc",)),
         ("world-vqa", "limit_vqa", ("overall",))]
COLUMNS = [("world-q", "overall", "region MC"), ("world-q", "region_swap", "swap"), ("world-sot", "auc", "SOT AUC"),
           ("world-vqa", "overall", "video QA")]
# region MC is also given against this variant on the same questions, with a paired bootstrap interval: at a few
# hundred questions a few points separate nothing, and the interval says how many do
REFERENCE = "mask_pool"


# tasks whose prompts carry no region: what a shared backbone may learn without favouring any region encoder
REGION_FREE_TASKS = ("video_qa", "rec", "rsot")
# on a backbone: the rate at which configs/small.yaml goes on from trained weights (its stage 2)
BACKBONE_LR, BACKBONE_WARMUP = 5.0e-4, 100


def variant_config(base: dict, overrides: dict, budget: int, tokenizer: Path, threads=None,
                   backbone: Path | None = None, seed: int | None = None) -> dict:
    """The base config with the variant's model options, one stage of ``budget`` steps: the base's first stage
    (from scratch its warmup keeps its share of the steps; on a ``backbone``, a folder holding ``vision`` and
    ``lm``, the peak rate is BACKBONE_LR with BACKBONE_WARMUP steps)."""
    cfg = json.loads(json.dumps(base))
    if threads:
        cfg["cpu_threads"] = threads
    cfg["model"]["config"].update(overrides)
    cfg["tokenizer"] = {"path": str(tokenizer)}
    if seed is not None:  # the training seed (fresh weights, dropout); the data stream keeps data.seed
        cfg["seed"] = seed
    stage = cfg["stages"][0]
    total = sum(s["steps"] for s in cfg["stages"])
    if backbone:
        for part in ("vision_config", "text_config"):  # the loaded parts bring their own
            cfg["model"]["config"].pop(part, None)
        cfg["model"].update(vision_path=str(backbone / "vision"), lm_path=str(backbone / "lm"))
        stage = dict(stage, lr=BACKBONE_LR)
        warmup = BACKBONE_WARMUP
    else:
        warmup = round(stage.get("warmup", 0) * budget / total)
    cfg["stages"] = [dict(stage, steps=budget, warmup=max(1, min(warmup, budget // 10)))]
    # checkpoints along the way: a run cut off (a time limit per command on a lent GPU) resumes from the last
    cfg["checkpoint_every"] = max(1, min(budget, 300))
    return cfg


def backbone_config(base: dict, steps: int, tokenizer: Path, threads=None, workers: int = 0) -> dict:
    """The base config trained ``steps`` steps on its region-free tasks only, from scratch (its first stage), its
    batches rendered by ``workers`` DataLoader workers (it trains alone, before the variants: on a GPU the
    rendering is what it waits for)."""
    cfg = variant_config(base, {}, steps, tokenizer, threads)
    tasks = cfg["data"].get("tasks") or {}
    cfg["data"]["tasks"] = {t: tasks.get(t, 1.0) for t in REGION_FREE_TASKS}
    if workers:
        cfg["data"]["workers"] = workers
    return cfg


def export_backbone(final: Path, dest: Path) -> None:
    """Save a trained RegionLM's vision tower and LM as Hugging Face folders ``dest/vision`` and ``dest/lm``, the
    form a real checkpoint has (written beside ``dest`` first, then renamed into place)."""
    import shutil

    from regionlm.model import RegionLMForConditionalGeneration

    model = RegionLMForConditionalGeneration.from_pretrained(str(final))
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.vision_tower.save_pretrained(tmp / "vision")
    model.language_model.save_pretrained(tmp / "lm")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


class Stopped(Exception):
    """A SIGTERM or Ctrl-C came: the runs under way were passed it and stopped (trainings with a checkpoint)."""


# the `regionlm` runs under way, and the signal that stops them all: the script waits for them to stop, so that
# none is left writing to a closed pipe (a training would die of it before writing its checkpoint)
CHILDREN: set = set()
STOP = threading.Event()
STOP_SIGNAL = [signal.SIGTERM]


def stop_children(signum, _frame) -> None:
    STOP_SIGNAL[0] = signum
    STOP.set()
    for proc in list(CHILDREN):
        proc.send_signal(signum)


def run(cmd: list, what: str, threads=None) -> str:
    if STOP.is_set():
        raise Stopped(what)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads)) if threads else None
    proc = subprocess.Popen([sys.executable, "-m", "regionlm.cli", *cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    CHILDREN.add(proc)
    try:
        stdout, stderr = proc.communicate()
    finally:
        CHILDREN.discard(proc)
    if proc.returncode != 0:
        if STOP.is_set():
            raise Stopped(what)
        tail = (stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"{what} failed: {tail}")
    return stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=int, default=3600, help="training steps per variant (default 3600)")
    ap.add_argument("--only", help="comma-separated variant names (default: all)")
    ap.add_argument("--config", default=str(REPO / "configs" / "small.yaml"))
    ap.add_argument("--videos", type=int, default=200, help="videos in the held-out test split")
    ap.add_argument("--limit-q", type=int, default=400, help="world-q questions per variant (0: all)")
    ap.add_argument("--limit-track", type=int, default=100, help="world-sot sequences per variant (0: all)")
    ap.add_argument("--limit-vqa", type=int, default=200, help="world-vqa questions per variant (0: all)")
    ap.add_argument("--data-dir", default=str(REPO / "runs" / "data"))
    ap.add_argument("--out", help="results folder (default benchmarks/results/compare_encoders, "
                                  "or compare_encoders-backbone with --backbone-steps)")
    ap.add_argument("--threads", type=int, help="CPU threads per training / eval run (default: the config's; "
                                                "with --jobs N, the cores / N)")
    ap.add_argument("--jobs", type=int, default=1, help="variants trained and evaluated at once (default 1)")
    ap.add_argument("--backbone-steps", type=int, default=0,
                    help="first train a shared vision tower + LM this many steps on region-free tasks and start "
                         "every variant from it (default 0: every variant from random weights)")
    ap.add_argument("--backbone-workers", type=int, default=0,
                    help="DataLoader workers rendering the backbone's batches (default 0: in the training loop); "
                         "a resumed backbone needs the same number")
    ap.add_argument("--seed", type=int, help="training seed of every variant (default: the config's); the data "
                                             "and the backbone stay the same - a second seed shows training noise")
    ap.add_argument("--also", nargs="+", default=[], metavar="OUT",
                    help="results folders of the same comparison trained with another --seed: the claims give "
                         "each seed's difference and pool their answers")
    ap.add_argument("--report", action="store_true",
                    help="only print the table (and put it in --doc) from what --out holds: train and evaluate "
                         "nothing (results brought back from another machine)")
    ap.add_argument("--doc", help="a Markdown file to put the table in (between the markers)")
    args = ap.parse_args()
    if args.budget < 1 or args.backbone_steps < 0 or args.backbone_workers < 0:
        raise SystemExit("--budget must be >= 1, --backbone-steps and --backbone-workers >= 0")

    names = args.only.split(",") if args.only else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"--only: unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    out = Path(args.out or REPO / "benchmarks" / "results" /
               ("compare_encoders-backbone" if args.backbone_steps else "compare_encoders"))
    out.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load(Path(args.config).read_text())
    results = {}
    old = out / "compare_encoders.json"
    if old.is_file():
        report = json.loads(old.read_text())
        was = (report.get("budget"), report.get("backbone_steps", 0))
        if was != (args.budget, args.backbone_steps):  # its trained variants would be kept and mixed in
            raise SystemExit(f"--out {out}: holds a run with --budget {was[0]} --backbone-steps {was[1]}; "
                             f"give another --out for --budget {args.budget} --backbone-steps {args.backbone_steps}")
        results = report.get("variants", {})
    if args.report:  # the table again from what OUT holds (its runs' logs and evaluations; no weights needed)
        if not results:
            raise SystemExit(f"--report: {out / 'compare_encoders.json'} holds no evaluated variant")
        for name, row in results.items():
            row.update(run_stats(out / "runs" / name, base["batch_size"]))
        write(out, results, args)
        publish(results, [n for n in names if n in results], out, args)
        return 0

    from default_model import ensure_split  # the same held-out split as the default model's bars

    data = ensure_split(Path(args.data_dir), "test", args.videos)
    tokenizer = out / "tokenizer"
    if not (tokenizer / "tokenizer.json").is_file():  # one tokenizer for all: the default config's
        from regionlm.model.tokenizer import build_default_tokenizer

        spec = base.get("tokenizer", {})
        build_default_tokenizer(tokenizer, num_videos=spec.get("corpus_videos", 400),
                                seed=spec.get("corpus_seed", 0), vocab_size=spec.get("vocab_size", 2048))

    lock = threading.Lock()
    # with --jobs N, N variants train and evaluate at once, the cores shared between them (a small model leaves a
    # GPU mostly idle: several runs side by side use it better than one after another)
    threads = args.threads or (max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None)
    args.backbone = None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop_children)
    try:  # needed only by variants still to train (their finished runs may come from elsewhere)
        if args.backbone_steps and not all((out / "runs" / n / "final" / "config.json").is_file() for n in names):
            args.backbone = train_backbone(args, base, tokenizer, out, args.threads)
    except Stopped:  # the variants see STOP and train nothing
        pass

    def one(name: str) -> None:
        try:
            row = variant_row(name, args, base, tokenizer, data, out, results.get(name, {}), threads)
        except Stopped:
            return
        with lock:
            results[name] = row
            write(out, results, args)  # after every variant: an interrupted run keeps what it measured

    if not STOP.is_set():
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for future in [pool.submit(one, name) for name in names]:
                future.result()
    if STOP.is_set():
        print(f"stopped: {len(results)} of {len(names)} variants done; the same command goes on from there",
              file=sys.stderr)
        return 128 + STOP_SIGNAL[0]
    publish(results, names, out, args)
    return 0


def publish(results: dict, names: list, out: Path, args) -> None:
    """Print the table and the claims; with --doc put them into the file, between the markers of this kind of
    run (compare_encoders, compare_encoders_backbone, ..._seedN)."""
    table = markdown(results, names, out)
    claims = claims_markdown([out] + [Path(o) for o in args.also])
    if claims:
        seeds = f" ({1 + len(args.also)} seeds: this run's, then --also's)" if args.also else ""
        table += f"\n\nThe papers' claims, paired over the same questions{seeds}:\n\n" + claims
    print(table)
    if args.doc:
        marker = "compare_encoders_backbone" if args.backbone_steps else "compare_encoders"
        marker += f"_seed{args.seed}" if args.seed is not None else ""
        put_in_doc(Path(args.doc), table, marker)
        print(f"table written into {args.doc}")


def train(name: str, cfg: dict, run_dir: Path, out: Path, threads, what: str) -> bool:
    """`regionlm train` of ``cfg`` (written to OUT/NAME.yaml) into ``run_dir``, resuming a run that was cut off.
    Returns whether it resumed (what it reached is read from its log: run_stats)."""
    cfg_file = out / f"{name}.yaml"
    atomic_write_text(cfg_file, yaml.safe_dump(cfg))
    resume = any((run_dir / "checkpoints").glob("step-*"))
    print(f"[{name}] training {what} -> {run_dir}{' (resuming)' if resume else ''}", file=sys.stderr, flush=True)
    cmd = ["train", "--config", str(cfg_file), "--out", str(run_dir), "--json"] + (["--resume"] if resume else [])
    run(cmd, f"{name}: training", threads)
    return resume


def train_backbone(args, base: dict, tokenizer: Path, out: Path, threads) -> Path:
    """The shared starting point (--backbone-steps): trained once, resumed when cut off, exported once."""
    run_dir, dest = out / "backbone", out / "backbone" / "parts"
    if (dest / "lm" / "config.json").is_file():
        return dest
    if not (run_dir / "final" / "config.json").is_file():
        train("backbone", backbone_config(base, args.backbone_steps, tokenizer, threads, args.backbone_workers),
              run_dir, out, threads,
              f"{args.backbone_steps} steps on {', '.join(REGION_FREE_TASKS)}")
    export_backbone(run_dir / "final", dest)
    return dest


def variant_row(name: str, args, base: dict, tokenizer: Path, data: Path, out: Path, before: dict, threads):
    """Train one variant (or resume its cut-off run, or keep its finished one), then evaluate it."""
    overrides, what = VARIANTS[name]
    run_dir = out / "runs" / name
    final = run_dir / "final"
    row = {"variant": name, "what": what, "overrides": overrides, "budget": args.budget}
    if not (final / "config.json").is_file():
        row["resumed"] = train(name, variant_config(base, overrides, args.budget, tokenizer, threads, args.backbone,
                                                    args.seed),
                               run_dir, out, threads, f"{args.budget} steps")
    else:
        row["resumed"] = before.get("resumed")
    row.update(run_stats(run_dir, base["batch_size"]))
    for bench, limit_key, keys in EVALS:
        limit = getattr(args, limit_key)
        cmd = ["eval", "--benchmark", bench, "--data", str(data), "--model", str(final),
               "--out", str(out / "evals" / name / bench), "--json"] + (["--limit", str(limit)] if limit else [])
        print(f"[{name}] {bench}", file=sys.stderr, flush=True)
        res = json.loads(run(cmd, f"{name}: {bench}", threads).strip().splitlines()[-1])
        row[bench] = {k: res["metrics"].get(k) for k in keys} | {"num_samples": res["num_samples"]}
    return row


def run_stats(run_dir: Path, batch_size: int) -> dict:
    """From a run's log (all its sessions, however often it was cut off and resumed): the last logged loss, the
    samples per second of its last windows and its minutes of training steps (start-up and evaluation not
    counted)."""
    path = run_dir / "log.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    if not records:
        return {"last_loss": None, "samples_per_s": None, "train_seconds": None}
    seconds, step = 0.0, 0
    for r in records:
        seconds += (r["step"] - step) * batch_size / r["samples_per_s"]
        step = r["step"]
    recent = [r["samples_per_s"] for r in records[-5:]]
    return {"last_loss": records[-1]["loss"], "samples_per_s": round(sum(recent) / len(recent), 1),
            "train_seconds": round(seconds, 1)}


def paired_difference(a: dict, b: dict, rounds: int = 2000, seed: int = 0):
    """Percent right of ``a`` minus ``b`` ({question id: right?}) on the questions both answered, with the 95%
    interval of a paired bootstrap over those questions: (difference, low, high, n), or None if none is shared."""
    import numpy as np

    ids = sorted(set(a) & set(b))
    if not ids:
        return None
    d = np.array([float(a[i]) - float(b[i]) for i in ids]) * 100
    draws = np.random.default_rng(seed).integers(0, len(d), size=(rounds, len(d)))
    means = d[draws].mean(axis=1)
    return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)), len(ids)


def per_sample(out: Path | None, name: str, bench: str = "world-q") -> list:
    """The per-sample rows of a variant's evaluation under OUT/evals ([] if it has none)."""
    path = out / "evals" / name / bench / "results.json" if out is not None else None
    if path is None or not path.is_file():
        return []
    return json.loads(path.read_text()).get("per_sample", [])


def mc_answers(out: Path, name: str, bench: str = "world-q", key: str = "correct") -> dict:
    """{question id: right?} of a variant's evaluation on a multiple-choice ``bench`` under OUT/evals ({} if it
    has none); ``key``: the per-sample field to read (``swap_follows``: only the questions that have it)."""
    return {s["id"]: bool(s[key]) for s in per_sample(out, name, bench) if key in s}


def versus_reference(out: Path | None, name: str, reference: dict) -> str:
    """The region MC cell against REFERENCE, whose answers ({question id: right?}) are ``reference``."""
    if out is None or name == REFERENCE:
        return "-"
    diff = paired_difference(mc_answers(out, name), reference)
    return "-" if diff is None else f"{diff[0]:+.1f} [{diff[1]:+.1f}, {diff[2]:+.1f}]"


def swap_unchanged(out: Path | None, name: str) -> str:
    """The percent of region-swap questions a variant answered with the same letter for the look-alike's region as
    for the object's own (100: the answer never depends on which of the two regions is given)."""
    rows = [r for r in per_sample(out, name) if "swap_choice" in r]
    return f"{100.0 * sum(r['swap_choice'] == r['choice'] for r in rows) / len(rows):.1f}" if rows else "-"


def markdown(results: dict, names: list, out: Path | None = None) -> str:
    head = ("| variant | what | " + " | ".join(c[2] for c in COLUMNS) + f" | swap unchanged | region MC vs "
            f"{REFERENCE} (95%) | final loss | train min |")
    lines = [head, "|" + "---|" * (len(COLUMNS) + 6)]
    reference = mc_answers(out, REFERENCE) if out is not None else {}  # read once, not once per row
    for name in names:
        r = results.get(name)
        if not r:
            continue
        cells = []
        for bench, key, _ in COLUMNS:
            v = (r.get(bench) or {}).get(key)
            cells.append("-" if v is None else f"{v:.1f}")
        loss = "-" if r.get("last_loss") is None else f"{r['last_loss']:.3f}"
        mins = "-" if r.get("train_seconds") is None else f"{r['train_seconds'] / 60:.1f}"
        versus = versus_reference(out, name, reference)
        lines.append(f"| {name} | {r['what']} | " + " | ".join(cells) + f" | {swap_unchanged(out, name)} | {versus} "
                     f"| {loss} | {mins} |")
    return "\n".join(lines)


# the papers' claims, each a paired comparison of two variants on the questions both answered:
# (claim, variant, against, benchmark, per-sample key: "correct", or "swap_follows" for region_swap). world-q
# shows a region on its key frame only (Bench-Q's single-frame mode), the case the guide head is for.
CLAIMS = [
    ("masks beat boxes (VideoRefer, Bench-Q 64.8 vs 57.2)", "mask_pool", "roi_box", "world-q", "correct"),
    ("... on the answer following the region (region swap)", "mask_pool", "roi_box", "world-q", "swap_follows"),
    ("temporal merge helps (VideoRefer, +3.3)", "mask_pool", "mask_pool-nomerge", "world-q", "correct"),
    ("... on the answer following the region (region swap)", "mask_pool", "mask_pool-nomerge", "world-q",
     "swap_follows"),
    ("the guide head helps a region marked on one frame (Omni-RGPT)", "token_mark", "token_mark-noguide",
     "world-q", "correct"),
    ("... on the answer following the region (region swap)", "token_mark", "token_mark-noguide", "world-q",
     "swap_follows"),
    ("T-Selector beats STC at 64 tokens (Elysium)", "t_selector-64", "stc-64", "world-q", "correct"),
    ("T-Selector beats pooling at 128 tokens (Elysium)", "t_selector-128", "mask_pool", "world-q", "correct"),
    ("object tokens help video-level questions (VideoOrion)", "object_tokens", "mask_pool", "world-vqa",
     "correct"),
]


def claims_markdown(outs: list) -> str:
    """The CLAIMS whose two variants were both evaluated, each with its paired difference (percent right) in every
    results folder of ``outs`` (the same comparison trained with other seeds), pooled over all of them with a 95%
    bootstrap interval over (folder, question) pairs, and what it says: ``holds`` (the pooled interval above 0
    and every folder's difference positive), ``reversed`` (the same, below 0) or ``not shown``. The interval
    covers the questions' sampling, not the training seed's: the per-folder differences show that one."""
    lines = ["| claim | variant - against | measure | per seed | pooled (95%) | pairs | here |",
             "|---|---|---|---|---|---|---|"]
    for claim, a, b, bench, key in CLAIMS:
        per, pooled_a, pooled_b = [], {}, {}
        for k, out in enumerate(outs):
            ans_a, ans_b = mc_answers(out, a, bench, key), mc_answers(out, b, bench, key)
            diff = paired_difference(ans_a, ans_b)
            if diff is None:
                continue
            per.append(diff[0])
            pooled_a.update({(k, q): v for q, v in ans_a.items()})
            pooled_b.update({(k, q): v for q, v in ans_b.items()})
        if not per:
            continue
        d, low, high, n = paired_difference(pooled_a, pooled_b)
        verdict = ("holds" if low > 0 and min(per) > 0 else "reversed" if high < 0 and max(per) < 0
                   else "not shown")
        if verdict != "not shown" and len(per) == 1:
            verdict += " (1 seed)"
        measure = bench if key == "correct" else f"{bench} {key}"
        lines.append(f"| {claim} | {a} - {b} | {measure} | {' / '.join(f'{x:+.1f}' for x in per)} "
                     f"| {d:+.1f} [{low:+.1f}, {high:+.1f}] | {n} | {verdict} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def write(out: Path, results: dict, args) -> None:
    report = {"benchmark": "compare_encoders", "budget": args.budget, "backbone_steps": args.backbone_steps,
              "videos": args.videos,
              "limits": {"world-q": args.limit_q, "world-sot": args.limit_track, "world-vqa": args.limit_vqa},
              "variants": results}
    atomic_write_text(out / "compare_encoders.json", json.dumps(report, indent=2))
    atomic_write_text(out / "compare_encoders.md", markdown(results, list(results), out) + "\n")


def put_in_doc(doc: Path, table: str, marker: str = "compare_encoders") -> None:
    """Replace what is between <!-- MARKER:start --> and <!-- MARKER:end --> in ``doc`` with ``table``."""
    START, END = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = doc.read_text(encoding="utf-8") if doc.is_file() else f"{START}\n{END}\n"
    if START not in text or END not in text:
        raise SystemExit(f"--doc {doc}: no {START} ... {END} markers to put the table between")
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{table}\n{END}", text,
                 flags=re.S)
    atomic_write_text(doc, new)


if __name__ == "__main__":
    sys.exit(main())
