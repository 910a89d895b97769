"""The training loop, nanoGPT-sized: stages with their own AdamW (warmup + cosine), freezing, gradient
accumulation and clipping, DDP / FSDP2 under torchrun, exact resume, a JSON-lines log and a loss-curve PNG.

    Trainer(load_config("configs/tiny.yaml")).run()        # or: regionlm train --config configs/tiny.yaml

Layout of OUT (``out_dir``): ``log.jsonl`` (one record per ``log_every`` steps), ``checkpoints/step-NNNNNN/``
(checkpoint.py), ``tokenizer/`` (when trained here), ``final/`` (save_pretrained weights + processor, once every
stage is done), ``lora_adapter/`` (with a lora section), ``loss.png``, ``summary.json``.

Determinism, which ``--resume`` relies on: a rank's batch n is a pure function of (data seed, rank, world size,
n) - the data sources take a start position instead of being skipped through - and every RNG the step uses
(torch, numpy, python) is restored from the checkpoint, so k steps + resume to N ends with the same weights as N
steps in one go.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist

from regionlm.data.io import atomic_write_json, atomic_write_text, dumps_json
from regionlm.errors import RegionLMError
from regionlm.model.processing import IGNORE

from .checkpoint import (latest_checkpoint, list_checkpoints, load_checkpoint, load_optimizer_state_by_name,
                         optimizer_state_by_name, pack_rng, save_checkpoint, unpack_rng)
from .config import PARTS, TrainConfig, with_defaults

MODEL_PARTS = tuple(p for p in PARTS if p != "lora")  # top-level submodules of RegionLMForConditionalGeneration

# ------------------------------------------------------------------------------------------------ runtime


@dataclass
class Runtime:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_runtime(cfg: TrainConfig) -> Runtime:
    """cuda when there is one (``device: auto``); under torchrun (WORLD_SIZE > 1) a process group: nccl on CUDA,
    gloo on CPU."""
    use_cuda = torch.cuda.is_available() if cfg.device == "auto" else cfg.device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RegionLMError("device: cuda was asked for but torch sees no CUDA device")
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Runtime(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Runtime(rank, world, torch.device(f"cuda:{local}" if use_cuda else "cpu"))


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------------ data sources

DATA_SOURCES: dict[str, type] = {}


def register_data_source(name: str):
    def wrap(cls):
        DATA_SOURCES[name] = cls
        return cls

    return wrap


class DataSource:
    """Batches for one rank. ``batches(start)`` yields (batch dict, task names) from this rank's ``start``-th
    sample on; ``save(dir)`` writes what inference needs next to the weights (the processor)."""

    needs_tokenizer = False

    def __init__(self, cfg: TrainConfig, model_config, tokenizer, rank: int, world: int):
        self.cfg, self.model_config, self.tokenizer, self.rank, self.world = cfg, model_config, tokenizer, rank, world

    def batches(self, start: int) -> Iterator[tuple[dict, list]]:
        raise NotImplementedError

    def save(self, out_dir: Path) -> None:
        return None


@register_data_source("world")
class WorldSource(DataSource):
    """RegionWorld examples rendered on the fly (model.world_examples.WorldTaskStream, sharded by rank, mixed
    by the task weights) through the RegionLMProcessor."""

    needs_tokenizer = True

    def __init__(self, cfg, model_config, tokenizer, rank, world):
        super().__init__(cfg, model_config, tokenizer, rank, world)
        from regionlm.model.processing import RegionLMProcessor
        from regionlm.model.world_examples import check_task_weights
        from regionlm.world import WorldConfig

        try:  # checked here, before any work, with the config's key names
            self.world_cfg = WorldConfig(**cfg.data.world)
            self.world_cfg.validate()
        except (TypeError, RegionLMError) as err:
            raise RegionLMError(f"data.world: {err}") from None
        try:
            check_task_weights(cfg.data.tasks or None)
        except RegionLMError as err:
            raise RegionLMError(f"data.tasks: {err}") from None
        self.processor = RegionLMProcessor(tokenizer, model_config)

    def stream(self, start: int, shard: int = 0, shards: int = 1):
        """This rank's examples from ``start`` on; ``shard`` of ``shards`` splits them further (data workers)."""
        from dataclasses import replace

        from regionlm.model.world_examples import ExampleOptions, WorldTaskStream

        d = self.cfg.data
        options = replace(ExampleOptions(), first_frame_only=d.first_frame_only, multi_frame_prob=d.multi_frame_prob,
                          lookalike_pairs=d.lookalike_pairs, with_objects=self.model_config.uses_objects)
        return WorldTaskStream(self.world_cfg, d.split, d.seed, d.tasks or None, d.num_frames,
                               examples_per_video=d.examples_per_video, start=start,
                               rank=self.rank * shards + shard, world_size=self.world * shards, options=options)

    def _batches_from(self, stream):
        it = iter(stream)
        while True:
            examples = [next(it) for _ in range(self.cfg.batch_size)]
            yield self.processor(examples, train=True), [ex.task for ex in examples]

    def batches(self, start):
        workers = self.cfg.data.workers
        if workers == 0:
            yield from self._batches_from(self.stream(start))
            return
        from torch.utils.data import DataLoader

        # positions are whole batches: batch_size and grad_accum are fixed for a run (trajectory keys)
        loader = DataLoader(_WorkerBatches(self, start // self.cfg.batch_size), batch_size=None,
                            num_workers=workers, prefetch_factor=4, worker_init_fn=_one_thread,
                            pin_memory=torch.cuda.is_available(),
                            generator=torch.Generator().manual_seed(0))  # keeps the global RNG (resume) untouched
        yield from loader

    def save(self, out_dir):
        self.processor.save_pretrained(out_dir)


def without_causal_mask(batch: dict) -> dict:
    """A training batch without its attention mask when the mask says nothing causal attention does not: every
    row right-padded (its real tokens first) and no label on a padded position. A real token then never attends
    to padding anyway, so the loss is the same (the gradients to float rounding), while the language model skips
    building a (B, 1, L, L) mask (which read the device from the host every forward) and SDPA runs its causal
    kernels. Checked on the host copy, before the batch goes to the device."""
    mask, labels = batch.get("attention_mask"), batch.get("labels")
    if mask is None or labels is None or mask.device.type != "cpu":
        return batch
    real = mask.bool()
    right_padded = torch.equal(real, torch.arange(real.shape[1]) < real.sum(1, keepdim=True))
    if not right_padded or not bool((labels[~real] == IGNORE).all()):
        return batch
    return {k: v for k, v in batch.items() if k != "attention_mask"}


def _one_thread(_worker_id):
    torch.set_num_threads(1)  # the workers share the cores; each renders with one
    # a SIGTERM or Ctrl-C sent to the whole process group is the main process's to handle (it stops at the end of
    # the step and writes a checkpoint); a worker that died of it first would fail that step instead
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


class _WorkerBatches(torch.utils.data.IterableDataset):
    """A WorldSource's batches rendered by DataLoader workers. The loader takes one batch from each worker in
    turn starting at worker 0, so worker w serves the batches b >= start with b % W == (start + w) % W, each built
    from its own shard of the rank's stream: batch b is the same for any start, which keeps resume exact."""

    def __init__(self, source: WorldSource, start: int):
        self.source, self.start = source, start

    def __iter__(self):
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        w, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        slot = (self.start + w) % workers
        done = len(range(slot, self.start, workers))  # this slot's batches before the start
        stream = self.source.stream(done * self.source.cfg.batch_size, shard=slot, shards=workers)
        stream.split_by_workers = False
        yield from self.source._batches_from(stream)


@register_data_source("toy")
class ToySource(DataSource):
    """A learnable stand-in that needs no tokenizer (smoke tests, speed runs). Tasks: ``colour`` - say the colour
    of every frame (trains the vision path); ``copy`` - repeat a string of symbols (trains the LM). Sequence:
    bos <video>*N task prompt sep answer eos; labels on answer + eos. Sample n of rank r is drawn from
    ``default_rng([seed, n * world + r])``."""

    TASKS = ("colour", "copy")
    PALETTE = np.array([[230, 40, 40], [40, 180, 60], [45, 95, 235], [235, 215, 40], [150, 55, 205],
                        [245, 135, 25], [40, 205, 215], [238, 238, 238]], np.float32)
    SYMBOLS = 12

    def __init__(self, cfg, model_config, tokenizer, rank, world):
        super().__init__(cfg, model_config, tokenizer, rank, world)
        weights = cfg.data.tasks or {t: 1.0 for t in self.TASKS}
        for task in weights:
            if task not in self.TASKS:
                raise RegionLMError(f"data.tasks: unknown task {task!r} for data.source toy "
                                    f"(tasks: {', '.join(self.TASKS)})")
        self.tasks = [t for t in weights if weights[t] > 0]
        p = np.array([weights[t] for t in self.tasks], np.float64)
        self.p = p / p.sum()
        c = model_config
        base = max(c.video_token_id, c.region_token_id, c.object_token_id) + 1
        self.pad, self.bos, self.eos, self.sep = base, base + 1, base + 2, base + 3
        self.task_ids = {t: base + 4 + i for i, t in enumerate(self.TASKS)}
        self.symbol0 = base + 4 + len(self.TASKS)
        need = self.symbol0 + max(self.SYMBOLS, len(self.PALETTE))
        vocab = int(c.text_config.vocab_size)
        if vocab < need:
            raise RegionLMError(f"data.source toy needs a vocabulary of at least {need} tokens; the model has "
                                f"{vocab} (model.config.text_config.vocab_size)")
        self.n_ctx = c.num_context_tokens(cfg.data.num_frames)
        self.mean = np.asarray(c.image_mean, np.float32)[:, None, None]
        self.std = np.asarray(c.image_std, np.float32)[:, None, None]

    def sample(self, n: int) -> tuple[list, list, np.ndarray, str]:
        rng = np.random.default_rng([self.cfg.data.seed, n * self.world + self.rank])
        task = self.tasks[int(rng.choice(len(self.tasks), p=self.p))]
        t, s = self.cfg.data.num_frames, self.model_config.image_size
        colours = rng.integers(len(self.PALETTE), size=t)
        frames = np.broadcast_to(self.PALETTE[colours][:, :, None, None], (t, 3, s, s)) / 255.0
        frames = frames + rng.normal(0, 0.03, size=frames.shape).astype(np.float32)
        if task == "colour":
            prompt, answer = [], [self.symbol0 + int(k) for k in colours]
        else:
            prompt = [self.symbol0 + int(k) for k in rng.integers(self.SYMBOLS, size=int(rng.integers(3, 7)))]
            answer = list(prompt)
        head = [self.bos] + [self.model_config.video_token_id] * self.n_ctx + [self.task_ids[task]] + prompt
        ids = head + [self.sep] + answer + [self.eos]
        labels = [-100] * (len(head) + 1) + answer + [self.eos]
        return ids, labels, ((frames - self.mean) / self.std).astype(np.float32), task

    def batches(self, start):
        n = start
        while True:
            rows = [self.sample(n + i) for i in range(self.cfg.batch_size)]
            n += self.cfg.batch_size
            width = max(len(r[0]) for r in rows)
            ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
            labels = torch.full((len(rows), width), -100, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for b, (row, lab, _, _) in enumerate(rows):
                ids[b, :len(row)] = torch.tensor(row)
                labels[b, :len(lab)] = torch.tensor(lab)
                mask[b, :len(row)] = 1
            pixels = torch.from_numpy(np.stack([r[2] for r in rows]))
            yield ({"input_ids": ids, "attention_mask": mask, "labels": labels, "pixel_values": pixels},
                   [r[3] for r in rows])


# ------------------------------------------------------------------------------------------------ model


def prepare_tokenizer(cfg: TrainConfig, rt: Runtime):
    """The tokenizer: a saved one (``tokenizer.path``; a real checkpoint's gets <video>/<region>/<obj> added), or
    the default BPE trained on RegionWorld text into OUT/tokenizer by rank 0 (reused on --resume)."""
    from transformers import AutoTokenizer

    from regionlm.model.tokenizer import add_region_tokens, build_default_tokenizer

    spec = cfg.tokenizer
    if spec.path:
        tok = AutoTokenizer.from_pretrained(spec.path)
        add_region_tokens(tok)
        return tok
    folder = Path(cfg.out_dir) / "tokenizer"
    if rt.main and not (folder / "tokenizer.json").is_file():
        build_default_tokenizer(folder, num_videos=spec.corpus_videos, seed=spec.corpus_seed,
                                vocab_size=spec.vocab_size)
    if rt.distributed:
        dist.barrier()
    return AutoTokenizer.from_pretrained(folder)


def _sub_config(path: str, key: str):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    return getattr(config, key, None) or config  # a full CLIP/SigLIP folder nests its vision config


def build_model(cfg: TrainConfig, tokenizer=None):
    """RegionLMForConditionalGeneration from ``model``: a saved one (init_from), or a fresh one from its config
    with, optionally, real vision / LM checkpoints loaded into the parts. With a tokenizer, the special token
    ids come from it and the LM's vocabulary is made to cover it."""
    from transformers import AutoModelForCausalLM

    from regionlm.model import RegionLMConfig, RegionLMForConditionalGeneration
    from regionlm.model.tokenizer import REGION_TOKENS

    spec = cfg.model
    if spec.ordinal_numbers and (spec.init_from or spec.lm_path or tokenizer is None):
        raise RegionLMError("model.ordinal_numbers: only for a fresh language model with a tokenizer (not with "
                            "model.init_from, model.lm_path or the toy data source)")
    ids = {}
    if tokenizer is not None:
        vocab = tokenizer.get_vocab()
        ids = {key: vocab[tok] for key, tok in REGION_TOKENS.items()}
    if spec.init_from:
        try:
            model, info = RegionLMForConditionalGeneration.from_pretrained(
                spec.init_from, dtype=torch.float32, output_loading_info=True, **spec.config)
        except (ValueError, TypeError, RuntimeError) as err:
            raise RegionLMError(f"model.init_from: {spec.init_from} with model.config {spec.config}: "
                                f"{str(err).splitlines()[0]}") from None
        dropped = sorted(info.get("unexpected_keys") or []) + sorted(info.get("mismatched_keys") or [])
        if dropped:  # model.config may add parts (they start from their init), never lose or reshape saved ones
            raise RegionLMError(f"model.init_from: model.config {spec.config} would drop or reshape saved "
                                f"weights of {spec.init_from} ({', '.join(map(str, dropped[:3]))})")
        for key, value in ids.items():
            if getattr(model.config, key) != value:
                raise RegionLMError(f"model.init_from: {spec.init_from} has {key}={getattr(model.config, key)}, "
                                    f"the tokenizer says {value}: train with the model's own tokenizer")
    else:
        kwargs = {**spec.config, **ids}
        if spec.vision_path:
            kwargs["vision_config"] = _sub_config(spec.vision_path, "vision_config")
        if spec.lm_path:
            kwargs["text_config"] = _sub_config(spec.lm_path, "text_config")
        try:
            config = RegionLMConfig(**kwargs)
        except (ValueError, TypeError) as err:
            raise RegionLMError(f"model.config: {err}") from None
        if tokenizer is not None and not spec.lm_path and "vocab_size" not in (spec.config.get("text_config") or {}):
            config.text_config.vocab_size = len(tokenizer)  # a fresh LM: exactly the tokenizer's vocabulary
        model = RegionLMForConditionalGeneration(config)
        if spec.vision_path:
            model.vision_tower = type(model.vision_tower).from_pretrained(spec.vision_path,
                                                                          config=config.vision_config,
                                                                          dtype=torch.float32)
        if spec.lm_path:
            model.language_model = AutoModelForCausalLM.from_pretrained(spec.lm_path, dtype=torch.float32)
    if tokenizer is not None and len(tokenizer) > model.language_model.get_input_embeddings().num_embeddings:
        model.language_model.resize_token_embeddings(len(tokenizer))
        model.config.text_config.vocab_size = model.language_model.config.vocab_size
    if spec.ordinal_numbers:
        from regionlm.model.ordinal import init_ordinal_numbers
        from regionlm.model.tokenizer import NUMBERS

        missing = [n for n in NUMBERS if n not in vocab]  # vocab: the tokenizer's, read above
        if missing:
            raise RegionLMError(f"model.ordinal_numbers: the tokenizer has no token for {', '.join(missing[:5])}")
        init_ordinal_numbers(model, [vocab[n] for n in NUMBERS], seed=cfg.seed)
    return model


def apply_lora(model, spec):
    """peft LoRA on the language model's ``target_modules`` (other parts' layers of the same name untouched).
    Returns the module to train (the PeftModel) - the RegionLM stays reachable as ``get_base_model()``."""
    if spec is None:
        return model
    from peft import LoraConfig, get_peft_model

    names = "|".join(sorted(set(spec.target_modules)))
    lora = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                      target_modules=rf".*language_model\..*\.({names})$")
    return get_peft_model(model, lora)


def base_model(module):
    """The RegionLM under DDP / peft wrappers."""
    module = getattr(module, "module", module)  # DDP
    return module.get_base_model() if hasattr(module, "get_base_model") else module


def part_of(name: str) -> str:
    """Which trainable part a parameter name (of the training module) belongs to."""
    if "lora_" in name:
        return "lora"
    if name.startswith("pixel_head.") or ".pixel_head." in name:
        return "vision_tower"  # the tower's training aid trains with it
    for part in MODEL_PARTS:
        if name.startswith(part + ".") or f".{part}." in name:
            return part
    raise ValueError(f"parameter {name} belongs to no part")


def set_trainable(module, parts) -> int:
    """requires_grad = (its part is in ``parts``) for every parameter; returns how many elements train."""
    n = 0
    for name, p in module.named_parameters():
        p.requires_grad_(part_of(name) in parts)
        n += p.numel() if p.requires_grad else 0
    return n


def stages_extend(saved: list, now: list, step: int) -> bool:
    """True when ``now`` only appends stages to ``saved`` and the checkpoint at ``step`` lies inside ``saved``:
    every step up to it then had the same schedule, so resuming continues the longer run exactly (this is how a
    finished run is trained further without starting again)."""
    return len(now) > len(saved) and now[:len(saved)] == saved and step <= sum(s["steps"] for s in saved)


def lr_at(stage, step: int) -> float:
    """Linear warmup to ``lr`` over ``warmup`` steps, then cosine to ``min_lr_ratio * lr`` at the stage's end."""
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    span = max(1, stage.steps - stage.warmup)
    progress = min(1.0, (step - stage.warmup) / span)
    floor = stage.lr * stage.min_lr_ratio
    return floor + 0.5 * (stage.lr - floor) * (1 + math.cos(math.pi * progress))


def make_optimizer(module, cfg: TrainConfig, device) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; matrices decay, biases and norms do not (nanoGPT)."""
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.stages[0].lr, betas=tuple(cfg.betas),
                             fused=device.type == "cuda" or None)


def compile_layers(model) -> int:
    """torch.compile each transformer layer of the vision tower and the language model, in place (the weights'
    names do not change, so checkpoints are as without it). A small model's GPU step waits on launching its
    kernels one by one from Python more than on running them; compiled, each layer's many small operations run
    as a few fused kernels. Layer by layer, as PyTorch's regional compilation does: the layers of a tower share
    one compiled graph, so it compiles in seconds, and the LM's take any sequence length (dynamic=True) without
    compiling again. A region encoder with a ``compile_parts`` method compiles its own tensor work too. Returns
    the number of layers and parts compiled."""
    n = 0
    for tower, dynamic in ((model.vision_tower, False), (model.language_model, True)):
        layers = [m for m in tower.modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0
                  and all(type(x).__name__.endswith("Layer") for x in m)]
        for layer in (layers[0] if layers else []):
            layer.compile(dynamic=dynamic)
            n += 1
    if n == 0:
        raise RegionLMError("compile: found no transformer layers to compile in the vision tower or the LM")
    parts = getattr(model.region_encoder, "compile_parts", None)  # an encoder's own tensor work (mask_pool)
    return n + (parts() if parts is not None else 0)


def shard_fsdp(module) -> None:
    """FSDP2: every transformer block of the vision tower and the LM its own unit, then the root (which keeps
    the tied embeddings together)."""
    from torch.distributed.fsdp import fully_shard

    for name, sub in module.named_modules():
        if name.endswith(".layers") and isinstance(sub, torch.nn.ModuleList):
            for block in sub:
                fully_shard(block)
    fully_shard(module)


# ------------------------------------------------------------------------------------------------ the loop


class Trainer:
    """``Trainer(cfg, resume=False, max_steps=None, progress=True).run()`` -> summary dict (also OUT/summary.json).

    ``max_steps`` stops early (the schedule still follows the configured stages; a checkpoint is written); a
    later ``resume=True`` run continues from the newest checkpoint."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, max_steps: Optional[int] = None,
                 progress: bool = True):
        if max_steps is not None and max_steps < 1:
            raise RegionLMError(f"--max-steps must be >= 1, got {max_steps}")
        self.cfg, self.resume, self.progress = cfg, resume, progress
        self.stop = min(cfg.total_steps, max_steps or cfg.total_steps)
        self.out = Path(cfg.out_dir)
        self.stopped_by = None  # the signal's name when one ended the run early

    # ---------------------------------------------------------------- setup

    def run(self) -> dict:
        rt = init_runtime(self.cfg)
        try:
            return self._run(rt)
        finally:
            if rt.distributed and dist.is_initialized():
                dist.destroy_process_group()

    def _checkpoint_to_resume(self):
        if not self.resume:
            if list_checkpoints(self.out):
                raise RegionLMError(f"{self.out} already holds a run (checkpoints/): pass --resume to continue "
                                    f"it, or choose another --out")
            return None
        path = latest_checkpoint(self.out)
        if path is None:
            raise RegionLMError(f"--resume: no checkpoint in {self.out / 'checkpoints'}")
        ckpt = load_checkpoint(path)
        saved, now = with_defaults(ckpt.state["config"]), self.cfg.to_dict()
        for key in TrainConfig.TRAJECTORY_KEYS:
            if key == "stages" and stages_extend(saved["stages"], now["stages"], ckpt.state["step"]):
                continue
            if saved.get(key) != now.get(key):
                raise RegionLMError(f"--resume: the config's {key!r} differs from the run in {self.out}; resume "
                                    f"with the config it was started with")
        return ckpt

    def _run(self, rt: Runtime) -> dict:
        cfg = self.cfg
        ckpt = self._checkpoint_to_resume()
        if ckpt is not None and ckpt.state["world_size"] != rt.world:
            raise RegionLMError(f"--resume: the checkpoint was written by {ckpt.state['world_size']} processes, "
                                f"this run has {rt.world}; resume with the same --nproc_per_node")
        if cfg.data.source not in DATA_SOURCES:
            raise RegionLMError(f"data.source: unknown source {cfg.data.source!r} "
                                f"(known: {', '.join(DATA_SOURCES)})")
        source_cls = DATA_SOURCES[cfg.data.source]
        if rt.main:
            self.out.mkdir(parents=True, exist_ok=True)
        seed_everything(cfg.seed)  # the same initial weights on every rank
        tokenizer = prepare_tokenizer(cfg, rt) if source_cls.needs_tokenizer else None
        module = apply_lora(build_model(cfg, tokenizer), cfg.lora)
        if ckpt is not None:
            module.load_state_dict(ckpt.model)
        module.to(rt.device)
        if cfg.compile:
            compile_layers(base_model(module))
        fsdp = rt.distributed and cfg.distributed == "fsdp"
        if fsdp:
            shard_fsdp(module)
        source = source_cls(cfg, base_model(module).config, tokenizer, rt.rank, rt.world)
        step = 0 if ckpt is None else int(ckpt.state["step"])
        position = 0 if ckpt is None else int(ckpt.state["data_position"])
        seed_everything(cfg.seed + 1 + rt.rank)  # training randomness differs between ranks
        if ckpt is not None:
            unpack_rng(ckpt.rng[rt.rank])
        with self._stop_on_signals(rt):
            self._loop(rt, module, source, ckpt, step, position, fsdp)
        return self._finish(rt, module, source, fsdp)

    # ---------------------------------------------------------------- steps

    def _loop(self, rt, module, source, ckpt, step, position, fsdp):
        from tqdm import tqdm

        cfg = self.cfg
        self.log_path = self.out / "log.jsonl"
        self.records = self._read_log(step) if ckpt is not None else []
        if rt.main:
            atomic_write_text(self.log_path, "".join(dumps_json(r) + "\n" for r in self.records))
        batches = source.batches(position)
        autocast = self._autocast(rt)
        per_step = cfg.batch_size * cfg.grad_accum * rt.world
        stage_index, optimizer, wrapped, trainable = None, None, None, []
        window = _new_window()
        self.first_step = step
        bar = tqdm(total=self.stop, initial=step, disable=not (rt.main and self.progress), file=sys.stderr,
                   dynamic_ncols=True, desc="train")
        saved = step
        while step < self.stop and self.stopped_by is None:
            i, j = cfg.stage_at(step)
            stage = cfg.stages[i]
            if i != stage_index:
                stage_index = i
                optimizer, wrapped, trainable = self._start_stage(rt, module, stage, fsdp)
                if ckpt is not None and ckpt.state["stage"] == i and ckpt.state["step"] == step:
                    self._load_optimizer(module, optimizer, ckpt.optimizer, fsdp)
                bar.set_description(f"train [{stage.name}]")
            lr = lr_at(stage, j)
            for group in optimizer.param_groups:
                group["lr"] = lr
            start = time.perf_counter()
            losses = 0.0
            for micro in range(cfg.grad_accum):
                waited = time.perf_counter()
                batch, tasks = next(batches)
                window["data_time"] += time.perf_counter() - waited
                position += len(tasks)
                for t in tasks:
                    window["tasks"][t] = window["tasks"].get(t, 0) + 1
                batch = {k: v.to(rt.device, non_blocking=True) for k, v in without_causal_mask(batch).items()}
                last = micro == cfg.grad_accum - 1
                if fsdp:  # FSDP2: reduce-scatter only on the last micro-step
                    module.set_requires_gradient_sync(last)
                no_sync = rt.distributed and not fsdp and not last
                with (wrapped.no_sync() if no_sync else contextlib.nullcontext()), autocast:
                    out = wrapped(**batch)
                    loss, lm, aux = self._loss(out, module)
                (loss / cfg.grad_accum).backward()
                aux = aux if torch.is_tensor(aux) else torch.zeros_like(lm)
                losses = losses + torch.stack([v.float() for v in (loss.detach(), lm, aux)]) / cfg.grad_accum
            norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            # the numbers stay on the device until the log: reading them every step made the host wait for the
            # device every step, so a small model's steps ran one after another instead of being queued ahead
            norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
            window["pending"].append(torch.cat([losses, norm.float()[None]]))
            logging = step % cfg.log_every == 0 or step == self.stop
            if logging:  # the window's one wait for the device, timed as part of this step
                window["means"] = torch.stack(window["pending"]).double().mean(0).tolist()
            window["time"] += time.perf_counter() - start
            if logging:
                record = self._log(rt, window, step, stage, lr, per_step)
                bar.set_postfix(loss=f"{record['loss']:.4f}", samples_s=f"{record['samples_per_s']:.1f}")
                window = _new_window()
            bar.update(1)
            if step % cfg.checkpoint_every == 0 or step == self.stop:
                self._save_checkpoint(rt, module, optimizer, step, i, position, fsdp)
                saved = step
        if self.stopped_by is not None and saved != step:  # stopped by a signal: keep every finished step
            self._save_checkpoint(rt, module, optimizer, step, i, position, fsdp)
        bar.close()
        self.last_step = step

    @contextlib.contextmanager
    def _stop_on_signals(self, rt):
        """While the steps run, a SIGTERM (a scheduler's or `timeout`'s) or the first Ctrl-C ends the run at the end
        of the current step, with a checkpoint (a second Ctrl-C interrupts at once). Only in one process: the
        ranks of a distributed run would each stop at another step."""
        self.stopped_by = None
        if rt.distributed or threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum, _frame):
            self.stopped_by = signal.Signals(signum).name
            signal.signal(signal.SIGINT, signal.default_int_handler)

        before = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)

    def _autocast(self, rt):
        precision = self.cfg.precision
        if precision == "bf16" or (precision == "auto" and rt.device.type == "cuda"):
            return torch.autocast(device_type=rt.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _loss(self, out, module):
        """(loss, lm_loss, aux_loss): the model's own combination unless ``aux_alpha`` overrides its alpha."""
        aux = out.aux_loss
        lm = out.lm_loss if out.lm_loss is not None else out.loss
        loss = out.loss  # LM + guide_alpha x aux (+ pixel_recon_alpha x pixel loss)
        if aux is None:
            return loss, lm.detach(), 0.0
        if self.cfg.aux_alpha is not None:  # the config's alpha in place of the model's
            loss = loss + (self.cfg.aux_alpha - base_model(module).config.guide_alpha) * aux
        return loss, lm.detach(), aux.detach()

    def _start_stage(self, rt, module, stage, fsdp):
        n = set_trainable(module, stage.trainable)
        if n == 0:
            raise RegionLMError(f"stage {stage.name!r} trains nothing: its parts {stage.trainable} have no "
                                f"parameters in this model")
        trainable = [p for p in module.parameters() if p.requires_grad]
        optimizer = make_optimizer(module, self.cfg, rt.device)
        wrapped = module
        if rt.distributed and not fsdp:  # DDP registers the trainable parameters when built: once per stage
            from torch.nn.parallel import DistributedDataParallel

            wrapped = DistributedDataParallel(module, device_ids=[rt.device.index] if rt.device.type == "cuda"
                                              else None, find_unused_parameters=self.cfg.find_unused_parameters)
        return optimizer, wrapped, trainable

    # ---------------------------------------------------------------- log

    def _read_log(self, step: int) -> list:
        import json

        if not self.log_path.is_file():
            return []
        out = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if rec.get("step", 0) <= step:
                out.append(rec)
        return out

    def _log(self, rt, window, step, stage, lr, per_step) -> dict:
        loss, lm, aux, norm = window["means"]
        stats = torch.tensor([loss, lm, aux, window["time"], window["data_time"]], dtype=torch.float64)
        if rt.distributed:
            stats = stats.to(rt.device)
            dist.all_reduce(stats)
            stats = stats.cpu() / rt.world
        loss, lm, aux, secs, data_secs = stats.tolist()
        record = {"step": step, "stage": stage.name, "lr": lr, "loss": loss, "lm_loss": lm, "aux_loss": aux,
                  "grad_norm": norm,
                  "samples_per_s": per_step * len(window["pending"]) / max(secs, 1e-9),
                  # share of the time spent waiting for batches: near 1, the data workers are what limits the run
                  "data_wait": data_secs / max(secs, 1e-9),
                  "tasks": dict(sorted(window["tasks"].items()))}
        if rt.main:
            self.records.append(record)
            # one write() of a whole line on an O_APPEND file: a reader sees whole records
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (dumps_json(record) + "\n").encode("utf-8"))
            finally:
                os.close(fd)
        return record

    # ---------------------------------------------------------------- checkpoints

    def _state_dicts(self, module, optimizer, fsdp):
        """(model state, name-keyed optimizer state) on CPU; collective under FSDP (full tensors on rank 0)."""
        if fsdp:
            from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                                 get_optimizer_state_dict)

            opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return get_model_state_dict(module, options=opts), get_optimizer_state_dict(module, optimizer,
                                                                                        options=opts)
        names = {id(p): n for n, p in module.named_parameters()}
        return module.state_dict(), optimizer_state_by_name(optimizer, names)

    def _load_optimizer(self, module, optimizer, state, fsdp):
        if fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            saved = sorted(n for g in state["param_groups"] for n in g["params"])
            if saved != sorted(n for n, p in module.named_parameters() if p.requires_grad):
                raise RegionLMError("checkpoint: its optimizer holds other parameters than this run trains")
            # not strict: a parameter that never got a gradient (e.g. SigLIP's unused post_layernorm) has no
            # AdamW state yet, in the checkpoint or here
            set_optimizer_state_dict(module, optimizer, state,
                                     options=StateDictOptions(full_state_dict=True, strict=False))
        else:
            load_optimizer_state_by_name(optimizer, {id(p): n for n, p in module.named_parameters()}, state)

    def _save_checkpoint(self, rt, module, optimizer, step, stage_index, position, fsdp):
        model_state, optim_state = self._state_dicts(module, optimizer, fsdp)
        rng = pack_rng()
        if rt.distributed:
            gathered = [torch.zeros_like(rng) for _ in range(rt.world)]
            dev = rt.device if rt.device.type == "cuda" else torch.device("cpu")
            parts = [g.to(dev) for g in gathered]
            dist.all_gather(parts, rng.to(dev))
            rng = torch.stack([p.cpu() for p in parts])
        else:
            rng = rng[None]
        if rt.main:
            state = {"step": step, "stage": stage_index, "stage_step": step - sum(
                         s.steps for s in self.cfg.stages[:stage_index]),
                     "lr": optimizer.param_groups[0]["lr"], "data_position": position, "world_size": rt.world,
                     "config": self.cfg.to_dict()}
            save_checkpoint(self.out, step, model_state, optim_state, rng, state, self.cfg.keep_checkpoints)
        if rt.distributed:
            dist.barrier()

    # ---------------------------------------------------------------- the end

    def _finish(self, rt, module, source, fsdp) -> dict:
        cfg = self.cfg
        complete = self.last_step >= cfg.total_steps
        full_state = None
        if fsdp and complete:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            full_state = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True,
                                                                               cpu_offload=True))
        summary = None
        if rt.main:
            final = self._save_final(module, source, full_state) if complete else None
            png = plot_loss(self.records, cfg, self.out / "loss.png") if self.records else None
            first = self.records[0]["loss"] if self.records else None
            last = self.records[-1]["loss"] if self.records else None
            summary = {"out_dir": str(self.out), "complete": complete, "step": self.last_step,
                       "total_steps": cfg.total_steps, "stopped_by": self.stopped_by,
                       "resumed_from": self.first_step if self.resume else None,
                       "final": str(final) if final else None, "loss_png": str(png) if png else None,
                       "first_loss": first, "last_loss": last, "world_size": rt.world,
                       "distributed": cfg.distributed if rt.distributed else None, "device": str(rt.device),
                       "samples_per_s": (float(np.mean([r["samples_per_s"] for r in self.records[-5:]]))
                                         if self.records else None)}
            if final is not None and cfg.pointer is not None:
                summary["pointer"] = self._fit_pointer(final, rt)
            atomic_write_json(self.out / "summary.json", summary)
        if rt.distributed:
            dist.barrier()
        return summary or {"rank": rt.rank, "complete": complete, "step": self.last_step}

    def _fit_pointer(self, final: Path, rt) -> dict:
        """final/pointer_head.safetensors and refer_head.safetensors (config ``pointer``), fitted on the saved
        weights. A failure is a warning, not the run's: the weights are saved, and `regionlm fit-pointer` fits the
        heads later."""
        from regionlm.model import RegionLMForConditionalGeneration
        from regionlm.model.pointer_fit import fit_world_pointer

        spec, start = self.cfg.pointer, time.perf_counter()
        log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if self.progress else (lambda msg: None)
        try:
            model = RegionLMForConditionalGeneration.from_pretrained(final).to(rt.device).eval()
            paths = fit_world_pointer(model, final, spec.videos, spec.split, spec.seed, spec.steps,
                                      self.cfg.data.world, device=rt.device, log=log, refer_steps=spec.refer_steps)
        except Exception as e:  # noqa: BLE001 - the trained weights must not be lost to the head's fit
            print(f"warning: the pointer head was not fitted ({type(e).__name__}: {e}); fit it with regionlm "
                  f"fit-pointer --model {final}", file=sys.stderr)
            return {"error": f"{type(e).__name__}: {e}"}
        return {"path": str(paths["pointer"]), "refer": str(paths["refer"]) if paths["refer"] else None,
                "seconds": round(time.perf_counter() - start, 1)}

    def _save_final(self, module, source, full_state) -> Path:
        """OUT/final: save_pretrained (safetensors) of the RegionLM - LoRA merged in, its adapter also in
        OUT/lora_adapter - plus the processor; written next to it and renamed into place."""
        from regionlm.model import RegionLMForConditionalGeneration

        final = self.out / "final"
        tmp = Path(tempfile.mkdtemp(dir=self.out, prefix=".final-"))
        try:
            if full_state is not None:  # FSDP: an unsharded copy to save from
                model = RegionLMForConditionalGeneration(base_model(module).config)
                model.load_state_dict(full_state)
            elif self.cfg.lora is not None:
                adapter = Path(tempfile.mkdtemp(dir=self.out, prefix=".lora-"))
                module.save_pretrained(adapter)
                _replace_dir(adapter, self.out / "lora_adapter")
                model = module.merge_and_unload()
            else:
                model = base_model(module)
            model.save_pretrained(tmp, safe_serialization=True)
            source.save(tmp)
            atomic_write_json(tmp / "train_config.json", self.cfg.to_dict())
            _replace_dir(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final


def _new_window() -> dict:
    """What the loop gathers between two log records: each step's (loss, lm_loss, aux_loss, grad_norm) still on
    the device ("pending"; "means" once read back), seconds of steps and of waiting for batches, tasks seen."""
    return {"pending": [], "time": 0.0, "data_time": 0.0, "tasks": {}}


def _replace_dir(src: Path, dst: Path) -> None:
    """Move a finished folder into place; an older one is renamed away first and removed after."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def plot_loss(records: list, cfg: TrainConfig, path: Path) -> Path:
    """loss (and LM / aux loss when there is an aux loss) against step, stage boundaries dashed; atomic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["loss"] for r in records], label="loss")
    if any(r["aux_loss"] for r in records):
        ax.plot(steps, [r["lm_loss"] for r in records], label="lm_loss", alpha=0.8)
        ax.plot(steps, [r["aux_loss"] for r in records], label="aux_loss", alpha=0.8)
    edge = 0
    for stage in cfg.stages[:-1]:
        edge += stage.steps
        ax.axvline(edge, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(f"{Path(cfg.out_dir).name}: " + " / ".join(s.name for s in cfg.stages))
    ax.legend()
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path
