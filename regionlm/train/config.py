"""Training configuration: dataclasses read from a YAML file, every default in one place.

    model:      {config: {RegionLMConfig kwargs}} | {init_from: DIR[, config: options that add parts]}
                | + vision_path / lm_path (local HF folders)
    tokenizer:  {path: DIR} or trained on the RegionWorld corpus ({vocab_size, corpus_videos, corpus_seed})
    data:       {source: world|toy, split, seed, num_frames, tasks: {task: weight}, first_frame_only, multi_frame_prob,
                 examples_per_video, world: {WorldConfig options}, workers}
    stages:     [{name, steps, lr, warmup, min_lr_ratio, trainable: [vision_tower, connector, region_encoder,
                  language_model, lora]}, ...]
    lora:       {r, alpha, dropout, target_modules}   (peft, on the language model only)
    + batch_size (per process), grad_accum, seed, out_dir, checkpoint_every, keep_checkpoints, log_every,
      grad_clip, weight_decay, betas, aux_alpha, precision, distributed (ddp | fsdp), device, cpu_threads.

Every key is checked: an unknown key or a wrong type is one line naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from regionlm.errors import RegionLMError

PARTS = ("vision_tower", "connector", "region_encoder", "language_model", "lora")
PRECISIONS = ("auto", "fp32", "bf16")
DISTRIBUTED = ("ddp", "fsdp")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class ModelSpec:
    """Where the weights come from. ``config`` is passed to RegionLMConfig; ``init_from`` loads a saved RegionLM
    (then ``config`` may only switch on options that add parts, e.g. ``region_geometry``: the new part starts from
    its init and every saved weight is kept); ``vision_path`` / ``lm_path`` load real checkpoints into the two
    parts. ``ordinal_numbers``: a fresh LM's number tokens start with an embedding of their value
    (regionlm/model/ordinal.py)."""

    config: dict = field(default_factory=dict)
    init_from: Optional[str] = None
    vision_path: Optional[str] = None
    lm_path: Optional[str] = None
    ordinal_numbers: bool = False


@dataclass
class TokenizerSpec:
    """``path``: a saved tokenizer (or processor) folder. Without it the default BPE tokenizer is trained on the
    text of ``corpus_videos`` RegionWorld videos (seed ``corpus_seed``)."""

    path: Optional[str] = None
    vocab_size: int = 2048
    corpus_videos: int = 500
    corpus_seed: int = 0


@dataclass
class DataSpec:
    """``source`` names a data source (trainer.DATA_SOURCES): ``world`` streams RegionWorld examples through the
    processor; ``toy`` is a small learnable stand-in (smoke tests, speed runs) that needs no tokenizer.
    ``tasks`` maps task name -> sampling weight (empty: the source's defaults)."""

    source: str = "world"
    split: str = "train"
    seed: int = 0
    num_frames: int = 4
    tasks: dict = field(default_factory=dict)
    first_frame_only: float = 0.5  # probability that a region is shown on its first frame only
    # otherwise: probability that it is given on every frame where it is seen (else on its key frame only); only
    # these regions carry a velocity (model.config.region_geometry)
    multi_frame_prob: float = 0.5
    examples_per_video: int = 4  # world: examples drawn from each rendered video
    # world: a region question with a look-alike gives both examples (the object's and the look-alike's), one
    # after the other (world_examples.ExampleOptions.lookalike_pairs)
    lookalike_pairs: bool = False
    world: dict = field(default_factory=dict)  # world: WorldConfig options (size, frames, objects, ...)
    # world: processes rendering batches beside the training loop (0: in the loop). Batch n comes from worker
    # n % workers, so the order depends on this number: a run resumes with the same value.
    workers: int = 0


@dataclass
class StageSpec:
    """One training stage: its own AdamW, linear warmup then cosine decay to ``min_lr_ratio * lr``; everything
    not in ``trainable`` is frozen."""

    name: str
    steps: int
    trainable: list
    lr: float = 1e-3
    warmup: int = 0
    min_lr_ratio: float = 0.1


@dataclass
class LoraSpec:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class PointerSpec:
    """After training, fit the model's pointer head (regionlm.model.pointer: how ``track`` follows a box) on the
    world-sot sequences of ``videos`` fresh RegionWorld videos of ``split`` / ``seed`` (videos training never
    streams), ``steps`` fit steps, and its refer head (regionlm.model.refer: how ``track`` finds the object an
    expression names) on their world-rsot sequences, ``refer_steps`` steps (0: none); ship them in final/ beside
    the weights (as the shipped model's were fitted)."""
    videos: int = 200
    split: str = "train"
    seed: int = 5
    steps: int = 400
    refer_steps: int = 1500


@dataclass
class TrainConfig:
    stages: list
    model: ModelSpec = field(default_factory=ModelSpec)
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    data: DataSpec = field(default_factory=DataSpec)
    lora: Optional[LoraSpec] = None
    pointer: Optional[PointerSpec] = None  # fit a pointer head after training (world data only)
    batch_size: int = 8  # per process and micro-step
    grad_accum: int = 1
    seed: int = 0
    out_dir: str = "runs/regionlm"
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    betas: list = field(default_factory=lambda: [0.9, 0.95])
    aux_alpha: Optional[float] = None  # None: the model's guide_alpha (loss = LM + alpha * aux)
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    distributed: str = "ddp"  # under torchrun (WORLD_SIZE > 1): ddp, or fsdp (FSDP2 fully_shard)
    device: str = "auto"
    cpu_threads: Optional[int] = None  # torch.set_num_threads (None: torch's default; torchrun sets 1 per process)
    find_unused_parameters: bool = True  # DDP: parts that a batch does not reach (e.g. no regions) are fine
    compile: bool = False  # torch.compile the vision tower's and the LM's layers (trainer.compile_layers)

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def stage_at(self, step: int) -> tuple[int, int]:
        """(stage index, step inside the stage) of the optimizer step ``step`` (0-based, < total_steps)."""
        for i, stage in enumerate(self.stages):
            if step < stage.steps:
                return i, step
            step -= stage.steps
        raise IndexError(step)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # fields that change what a run computes; the rest (logging, output) may differ on --resume
    TRAJECTORY_KEYS = ("stages", "model", "tokenizer", "data", "lora", "batch_size", "grad_accum", "seed",
                       "grad_clip", "weight_decay", "betas", "aux_alpha", "precision")


# ------------------------------------------------------------------------------------------------ loading


def _is_optional(tp) -> tuple[bool, Any]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return True, rest[0]
    return False, tp


def _check_value(value, tp, key: str, where: str):
    optional, tp = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise RegionLMError(f"{where}: {key} must not be empty")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, where)
    base = typing.get_origin(tp) or tp
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is bool and not isinstance(value, bool) or base is not bool and isinstance(value, bool):
        raise RegionLMError(f"{where}: {key} must be {base.__name__}, got {value!r}")
    if not isinstance(value, base):
        raise RegionLMError(f"{where}: {key} must be {base.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls, data, section: str, where: str):
    if not isinstance(data, dict):
        raise RegionLMError(f"{where}: {section or 'the file'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            name = f"{section}.{key}" if section else key
            raise RegionLMError(f"{where}: unknown key {name!r} (known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        full = f"{section}.{name}" if section else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RegionLMError(f"{where}: missing key {full!r}")
            continue
        kwargs[name] = _check_value(data[name], hints[name], full, where)
    return cls(**kwargs)


def _validate(cfg: TrainConfig, where: str) -> None:
    from regionlm.model.config import RegionLMConfig

    known = {f.name for f in dataclasses.fields(RegionLMConfig)}
    for key in cfg.model.config:
        if key not in known:
            raise RegionLMError(f"{where}: unknown key 'model.config.{key}' (not a RegionLMConfig option)")
    if cfg.model.init_from and (cfg.model.vision_path or cfg.model.lm_path):
        raise RegionLMError(f"{where}: model.init_from loads a saved model; leave vision_path and lm_path out")
    for key in ("init_from", "vision_path", "lm_path"):
        path = getattr(cfg.model, key)
        if path and not Path(path).is_dir():
            raise RegionLMError(f"{where}: model.{key}: {path} is not a folder")
    if cfg.tokenizer.path and not Path(cfg.tokenizer.path).is_dir():
        raise RegionLMError(f"{where}: tokenizer.path: {cfg.tokenizer.path} is not a folder")
    if not cfg.stages:
        raise RegionLMError(f"{where}: stages: give at least one stage")
    cfg.stages = [_build(StageSpec, s, f"stages[{i}]", where) for i, s in enumerate(cfg.stages)]
    for i, stage in enumerate(cfg.stages):
        key = f"stages[{i}] ({stage.name})"
        if stage.steps < 1:
            raise RegionLMError(f"{where}: {key}: steps must be >= 1, got {stage.steps}")
        if not 0 <= stage.warmup <= stage.steps:
            raise RegionLMError(f"{where}: {key}: warmup must be in [0, steps], got {stage.warmup}")
        if stage.lr <= 0 or not 0 <= stage.min_lr_ratio <= 1:
            raise RegionLMError(f"{where}: {key}: lr must be > 0 and min_lr_ratio in [0, 1]")
        if not stage.trainable or any(p not in PARTS for p in stage.trainable):
            raise RegionLMError(f"{where}: {key}: trainable must be a non-empty list from {', '.join(PARTS)}, "
                                f"got {stage.trainable}")
        if "lora" in stage.trainable and cfg.lora is None:
            raise RegionLMError(f"{where}: {key}: trains 'lora' but the file has no lora section")
    if cfg.cpu_threads is not None and cfg.cpu_threads < 1:
        raise RegionLMError(f"{where}: cpu_threads must be >= 1, got {cfg.cpu_threads}")
    for key in ("batch_size", "grad_accum", "checkpoint_every", "log_every", "keep_checkpoints"):
        if getattr(cfg, key) < 1:
            raise RegionLMError(f"{where}: {key} must be >= 1, got {getattr(cfg, key)}")
    if not isinstance(cfg.data.workers, int) or cfg.data.workers < 0:
        raise RegionLMError(f"{where}: data.workers must be an integer >= 0, got {cfg.data.workers!r}")
    if cfg.data.num_frames < 1 or not 0 <= cfg.data.first_frame_only <= 1 or not 0 <= cfg.data.multi_frame_prob <= 1:
        raise RegionLMError(f"{where}: data.num_frames must be >= 1, data.first_frame_only and "
                            f"data.multi_frame_prob in [0, 1]")
    for task, weight in cfg.data.tasks.items():
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
            raise RegionLMError(f"{where}: data.tasks.{task}: weight must be a number >= 0, got {weight!r}")
    if cfg.data.tasks and not sum(cfg.data.tasks.values()) > 0:
        raise RegionLMError(f"{where}: data.tasks: the weights sum to 0")
    if len(cfg.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in cfg.betas):
        raise RegionLMError(f"{where}: betas must be two numbers in [0, 1), got {cfg.betas}")
    for key, allowed in (("precision", PRECISIONS), ("distributed", DISTRIBUTED), ("device", DEVICES)):
        if getattr(cfg, key) not in allowed:
            raise RegionLMError(f"{where}: {key} must be one of {', '.join(allowed)}, got {getattr(cfg, key)!r}")
    if cfg.lora is not None and cfg.distributed == "fsdp":
        raise RegionLMError(f"{where}: lora with distributed: fsdp is not supported; use ddp")
    if cfg.pointer is not None:
        pt = cfg.pointer
        if cfg.data.source != "world":
            raise RegionLMError(f"{where}: pointer is fitted on RegionWorld tracking; data.source is "
                                f"{cfg.data.source!r}")
        if pt.videos < 1 or pt.steps < 1:
            raise RegionLMError(f"{where}: pointer.videos and pointer.steps must be >= 1")
        if pt.refer_steps < 0:
            raise RegionLMError(f"{where}: pointer.refer_steps must be >= 0 (0: no refer head)")
        if (pt.split, pt.seed) == (cfg.data.split, cfg.data.seed):
            raise RegionLMError(f"{where}: pointer: split {pt.split!r} seed {pt.seed} is what training streams; "
                                "fit the head on videos it never saw (another seed)")
    if cfg.lora is not None and (cfg.lora.r < 1 or not cfg.lora.target_modules):
        raise RegionLMError(f"{where}: lora: r must be >= 1 and target_modules non-empty")


def config_from_dict(data: dict, where: str = "<config>") -> TrainConfig:
    cfg = _build(TrainConfig, data, "", where)
    _validate(cfg, where)
    return cfg


def with_defaults(saved: dict) -> dict:
    """A checkpoint's config with the keys added since it was written filled in with their defaults (which keep
    the old behaviour), so that adding an option does not make older runs refuse to resume; as saved when it no
    longer reads as a config (a removed key), so that the comparison names what differs."""
    try:
        return config_from_dict(saved).to_dict()
    except (RegionLMError, TypeError, ValueError):
        return saved


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read and check a training YAML file; every problem is a RegionLMError naming the file and the key."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RegionLMError(f"--config: {path} is not a file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise RegionLMError(f"{path}: invalid YAML{at}: {getattr(err, 'problem', None) or err}") from None
    except UnicodeDecodeError:
        raise RegionLMError(f"{path}: not UTF-8 text") from None
    if data is None:
        raise RegionLMError(f"{path}: the file is empty")
    return config_from_dict(data, str(path))
