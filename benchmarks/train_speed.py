"""Training and inference speed of the default-size RegionLM (RegionLMConfig() defaults) for each connector.

For each connector (pool, stc, t_selector), with the default region encoder (token_mark) and RegionWorld batches
made by the real processor (16 frames of 64x64, the default num_frames):
  * train samples/s: forward + backward + AdamW step of the whole model on ready batches (the model's cost);
  * data samples/s: WorldTaskStream rendering + processor for the same batches (the input pipeline's cost);
  * generate latency: one sample, 32 new tokens forced (min_new_tokens=32), greedy.
Step times and latencies are medians (the machine's cores may be shared; the JSON records the load average).
Prints a table and writes JSON.
    python benchmarks/train_speed.py [--batch 4] [--steps 6] [--device cpu|cuda] [--out benchmarks/results/...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from regionlm.data.io import atomic_write_text
from regionlm.model import RegionLMConfig, RegionLMForConditionalGeneration
from regionlm.model.config import CONNECTORS
from regionlm.model.processing import RegionLMProcessor
from regionlm.model.tokenizer import build_default_tokenizer
from regionlm.model.world_examples import WorldTaskStream


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_connector(connector: str, tokenizer, args, device) -> dict:
    config = RegionLMConfig(connector=connector)  # every size at its default
    torch.manual_seed(0)
    model = RegionLMForConditionalGeneration(config).to(device)
    processor = RegionLMProcessor(tokenizer, config)
    n = args.batch * (args.steps + args.warmup)
    stream = iter(WorldTaskStream(split="train", seed=0, num_frames=config.num_frames))
    start = time.perf_counter()
    examples = [next(stream) for _ in range(n)]
    batches = [processor(examples[i:i + args.batch], train=True) for i in range(0, n, args.batch)]
    data_s = time.perf_counter() - start

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and args.bf16
                else torch.autocast("cpu", enabled=False))
    model.train()
    times, lengths = [], []
    for i, batch in enumerate(batches):
        batch = {k: v.to(device) for k, v in batch.items()}
        sync(device)
        t0 = time.perf_counter()
        with autocast:
            out = model(**batch)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            lengths.append(batch["input_ids"].shape[1])

    model.eval()
    prompt = processor([examples[0]], train=False)
    prompt = {k: v.to(device) for k, v in prompt.items()}
    latencies = []
    for i in range(args.gen_runs + 1):
        sync(device)
        t0 = time.perf_counter()
        with autocast:
            new = model.generate(**prompt, max_new_tokens=32, min_new_tokens=32, do_sample=False,
                                 **processor.generation_kwargs())
        sync(device)
        if i:  # the first call warms up
            latencies.append(time.perf_counter() - t0)
    assert new.shape[1] == 32
    return {"connector": connector, "region_encoder": config.region_encoder, "frames": config.num_frames,
            "context_tokens": config.num_context_tokens(config.num_frames),
            "mean_seq_len": round(sum(lengths) / len(lengths), 1),
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2), "batch": args.batch,
            "train_samples_per_s": round(args.batch / statistics.median(times), 2),
            "train_step_s": round(statistics.median(times), 3),
            "data_samples_per_s": round(n / data_s, 2),
            "generate_32_tokens_s": round(statistics.median(latencies), 3),
            "generate_32_tokens_min_s": round(min(latencies), 3),
            "ms_per_new_token": round(1000 * statistics.median(latencies) / 32, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6, help="timed training steps per connector")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--gen-runs", type=int, default=5)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--connectors", default=",".join(CONNECTORS))
    ap.add_argument("--out", default=None, help="default: benchmarks/results/train_speed_<device>.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_default_tokenizer(tmp, num_videos=50, vocab_size=2048)
    rows = [bench_connector(c, tokenizer, args, device) for c in args.connectors.split(",")]

    print(f"{'connector':<11} {'ctx tok':>7} {'seq':>6} {'params M':>8} {'train smp/s':>11} {'step s':>7} "
          f"{'data smp/s':>10} {'gen 32 tok s':>12} {'ms/token':>8}")
    for r in rows:
        print(f"{r['connector']:<11} {r['context_tokens']:>7} {r['mean_seq_len']:>6.0f} {r['params_m']:>8.2f} "
              f"{r['train_samples_per_s']:>11.2f} {r['train_step_s']:>7.3f} {r['data_samples_per_s']:>10.1f} "
              f"{r['generate_32_tokens_s']:>12.3f} {r['ms_per_new_token']:>8.1f}")
    where = torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or platform.machine()
    out = Path(args.out or f"benchmarks/results/train_speed_{args.device}.json")
    result = {"benchmark": "train_speed", "device": args.device, "hardware": where,
              "threads": torch.get_num_threads(), "bf16": bool(args.bf16 and device.type == "cuda"),
              "load_avg_1m_at_end": round(os.getloadavg()[0], 2),  # the 2 cores are shared: context for numbers
              "torch": torch.__version__, "python": sys.version.split()[0], "rows": rows}
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
