"""`regionlm train --config FILE.yaml [--resume] [--out DIR] [--max-steps N] [--json]`.

Multi-process: ``torchrun --nproc_per_node 2 -m regionlm.cli train --config FILE.yaml`` (DDP; ``distributed:
fsdp`` in the file for FSDP2). Only rank 0 writes files and prints.
"""

from __future__ import annotations

import json
import signal


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a RegionLM model from a YAML config (stages, LoRA, DDP/FSDP)",
                       description="Train a RegionLM model. Writes OUT/log.jsonl, OUT/checkpoints/, OUT/loss.png "
                                   "and, when every stage is done, OUT/final (save_pretrained + processor).")
    p.add_argument("--config", required=True, metavar="FILE.yaml", help="training config (see configs/tiny.yaml)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUT")
    p.add_argument("--out", metavar="DIR", help="output folder (overrides out_dir of the config)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps in all (the schedule "
                                                              "still follows the stages; --resume continues)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from .config import load_config
    from .trainer import Trainer

    cfg = load_config(args.config)
    if args.out:
        cfg.out_dir = args.out
    summary = Trainer(cfg, resume=args.resume, max_steps=args.max_steps).run()
    if "rank" in summary:  # not rank 0
        return 0
    # a run ended by a signal exits as the signal's usual status (128 + its number), its checkpoint written
    code = 128 + signal.Signals[summary["stopped_by"]].value if summary.get("stopped_by") else 0
    if args.json:
        print(json.dumps(summary))
        return code
    if summary["complete"]:
        state = "done"
    else:
        by = f" by {summary['stopped_by']}" if code else ""
        state = f"stopped at step {summary['step']} of {summary['total_steps']}{by} (continue with --resume)"
    print(f"training {state}: {summary['out_dir']}")
    if summary["first_loss"] is not None:
        print(f"  loss {summary['first_loss']:.4f} -> {summary['last_loss']:.4f}, "
              f"{summary['samples_per_s']:.1f} samples/s on {summary['device']} x{summary['world_size']}")
    if summary["final"]:
        print(f"  model: {summary['final']}")
    return 0
