"""What one training step of a config costs, part by part, and how fast the model ranks multiple-choice options.

For a training config (default: configs/default_trajectory.yaml, the next GPU run's), on its real batches:
  * data examples/s: the trainer's WorldSource (rendering + annotation + processor) on one thread, as each
    DataLoader worker runs it;
  * device operations of one forward + backward (a TorchDispatchMode count, views left out), per part of the
    model, and how many of them read a tensor's value back to Python (on a GPU, reads of device tensors are
    counted: each waits for everything queued before it; on the CPU every read is, including those of tensors
    that stay on the host on a GPU, such as the prompt's ids: an upper bound);
  * step seconds: the median of --steps timed training steps (forward, backward, clip, fused AdamW on CUDA), the
    batch as the trainer sends it (without_causal_mask), bf16 autocast on CUDA; with --compile the layers are
    compiled first (trainer.compile_layers) and the first steps, which compile, are not timed;
  * with --rank N: ms per question for N world-q questions of a generated test split ranked by the shipped
    model one by one (option_scores) and in batches of 16 (options_scores_many), and whether the picks agree.
Prints a table and writes JSON.
    python benchmarks/step_costs.py [--config FILE] [--batch 64] [--steps 3] [--device cpu|cuda] [--compile]
                                    [--rank 64] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from regionlm.data.io import atomic_write_text

REPO = Path(__file__).resolve().parent.parent
VIEWS = {"view", "as_strided", "transpose", "t", "_unsafe_view", "select", "slice", "narrow", "unsqueeze",
         "squeeze", "expand", "permute", "detach", "alias", "split", "unbind", "split_with_sizes", "_reshape_alias",
         "empty", "empty_strided", "lift_fresh", "reshape"}
HOST_READS = {"_local_scalar_dense", "nonzero", "is_nonzero", "equal"}
PARTS = ("vision_tower", "connector", "region_encoder", "language_model")


class OpCount(TorchDispatchMode):
    """Counts the operations dispatched, by the model part running (forward hooks set ``part``; the backward
    counts as its own part)."""

    def __init__(self, gpu: bool):
        super().__init__()
        self.gpu = gpu
        self.part, self.ops, self.reads = "other", collections.Counter(), collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name not in VIEWS:
            self.ops[self.part] += 1
        on_device = any(isinstance(a, torch.Tensor) and a.device.type != "cpu" for a in args)
        if name in HOST_READS and (on_device or not self.gpu):
            self.reads[self.part] += 1
        return func(*args, **(kwargs or {}))


def count_ops(model, batch, device) -> dict:
    counter = OpCount(gpu=device.type != "cpu")
    hooks = []
    for part in PARTS:
        module = getattr(model, part, None)
        if module is None:
            continue
        hooks.append(module.register_forward_pre_hook(lambda m, a, p=part: setattr(counter, "part", p)))
        hooks.append(module.register_forward_hook(lambda m, a, o: setattr(counter, "part", "other")))
    try:
        with counter:
            out = model(**batch)
            counter.part = "backward"
            out.loss.backward()
    finally:
        for h in hooks:
            h.remove()
    model.zero_grad(set_to_none=True)
    return {"total": sum(counter.ops.values()), "by_part": dict(counter.ops),
            "host_reads": sum(counter.reads.values()), "host_reads_by_part": dict(counter.reads)}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_seconds(model, cfg, batches, device, steps: int, skip: int) -> list:
    from regionlm.train.trainer import make_optimizer

    optimizer = make_optimizer(model, cfg, device)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    times = []
    for i in range(skip + steps):
        batch = {k: v.to(device, non_blocking=True) for k, v in batches[i % len(batches)].items()}
        sync(device)
        t0 = time.perf_counter()
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if i >= skip:
            times.append(time.perf_counter() - t0)
    return times


def rank_speed(n: int, device) -> dict:
    """ms per world-q question, one by one and batched, with the shipped model on a small generated test split."""
    import numpy as np

    from regionlm.eval.benchmarks import get_benchmark
    from regionlm.eval.benchmarks.base import BenchmarkOptions
    from regionlm.model.inference import load_eval_system
    from regionlm.world import generate_split

    with tempfile.TemporaryDirectory() as tmp:
        generate_split(Path(tmp), "test", max(1, n // 8), seed=1, progress=False)
        bench = get_benchmark("world-q")(BenchmarkOptions(data=Path(tmp)))
        samples = bench.samples(bench.load())[:n]
        system = load_eval_system(REPO / "regionlm" / "assets" / "default_model", benchmark=bench)
        system.model.to(device)
        examples = [system._sample_example(s) for s in samples]
        system.option_scores(examples[0], samples[0].options)  # warm-up
        t0 = time.perf_counter()
        one = [system.option_scores(e, s.options) for e, s in zip(examples, samples)]
        t1 = time.perf_counter()
        many = []
        for i in range(0, len(examples), 16):
            many += system.options_scores_many(examples[i:i + 16], [s.options for s in samples[i:i + 16]])
        t2 = time.perf_counter()
    diff = max(abs(a - b) for x, y in zip(one, many) for a, b in zip(x, y))
    return {"questions": len(samples), "one_by_one_ms": round(1000 * (t1 - t0) / len(samples), 1),
            "batched_ms": round(1000 * (t2 - t1) / len(samples), 1), "max_score_diff": float(f"{diff:.2e}"),
            "same_pick": sum(int(np.argmax(x) == np.argmax(y)) for x, y in zip(one, many))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "default_trajectory.yaml"))
    ap.add_argument("--batch", type=int, default=64, help="examples per step (default 64, the config's)")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps")
    ap.add_argument("--data-batches", type=int, default=4, help="batches rendered and timed for data examples/s")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--compile", action="store_true", help="time the steps with the layers compiled")
    ap.add_argument("--rank", type=int, default=0, metavar="N", help="also time ranking N world-q questions")
    ap.add_argument("--out", help="default: benchmarks/results/step_costs/<config>-<device>-b<batch>[-compiled].json")
    args = ap.parse_args()

    from regionlm.train.config import load_config
    from regionlm.train.trainer import (WorldSource, build_model, compile_layers, init_runtime, prepare_tokenizer,
                                        without_causal_mask)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    cfg = load_config(args.config)
    cfg.batch_size, cfg.data.workers = args.batch, 0
    rt = init_runtime(cfg)
    tokenizer = prepare_tokenizer(cfg, rt)
    torch.manual_seed(0)
    model = build_model(cfg, tokenizer).to(device).train()
    source = WorldSource(cfg, model.config, tokenizer, 0, 1)
    batches_it = source.batches(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as one data worker
    t0 = time.perf_counter()
    batches = [without_causal_mask(next(batches_it)[0]) for _ in range(args.data_batches)]
    data_s = time.perf_counter() - t0
    torch.set_num_threads(threads)
    print(f"data: {args.data_batches * args.batch / data_s:.1f} examples/s on one thread", file=sys.stderr)

    ops = count_ops(model, {k: v.to(device) for k, v in batches[0].items()}, device)
    skip = 1
    if args.compile:
        compile_layers(model)
        skip = 3  # compiling, and compiling again once the sequence length changes (then dynamic)
    times = step_seconds(model, cfg, batches, device, args.steps, skip)
    row = {"config": Path(args.config).name, "device": device.type, "compiled": args.compile, "batch": args.batch,
           "mean_seq_len": round(statistics.mean(b["input_ids"].shape[1] for b in batches), 1),
           "data_examples_per_s_one_thread": round(args.data_batches * args.batch / data_s, 1),
           "ops_per_step": ops["total"], "ops_by_part": ops["by_part"], "host_reads": ops["host_reads"],
           "host_reads_by_part": ops["host_reads_by_part"], "step_s": round(statistics.median(times), 4),
           "steps_per_s": round(1 / statistics.median(times), 2)}
    if args.rank:
        row["rank"] = rank_speed(args.rank, device)

    print(f"{'config':<26} {'device':>6} {'compiled':>8} {'batch':>5} {'seq':>5} {'data ex/s/thread':>16} "
          f"{'ops/step':>8} {'host reads':>10} {'step s':>8} {'steps/s':>7}")
    print(f"{row['config']:<26} {row['device']:>6} {str(row['compiled']):>8} {row['batch']:>5} "
          f"{row['mean_seq_len']:>5.0f} {row['data_examples_per_s_one_thread']:>16.1f} {row['ops_per_step']:>8} "
          f"{row['host_reads']:>10} {row['step_s']:>8.3f} {row['steps_per_s']:>7.2f}")
    print("ops by part: " + ", ".join(f"{k} {v}" for k, v in sorted(ops["by_part"].items())))
    if args.rank:
        r = row["rank"]
        print(f"ranking {r['questions']} world-q questions: {r['one_by_one_ms']} ms each one by one, "
              f"{r['batched_ms']} ms in batches of 16 (max score difference {r['max_score_diff']}, "
              f"same pick {r['same_pick']}/{r['questions']})")
    where = torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or platform.machine()
    name = f"{Path(args.config).stem}-{device.type}-b{args.batch}{'-compiled' if args.compile else ''}"
    out = Path(args.out or REPO / "benchmarks" / "results" / "step_costs" / f"{name}.json")
    result = {"benchmark": "step_costs", "hardware": where, "threads": threads, "torch": torch.__version__,
              "load_avg_1m_at_end": round(os.getloadavg()[0], 2), "row": row}
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
