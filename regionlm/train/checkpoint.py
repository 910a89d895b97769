"""Training checkpoints without pickle: tensors in safetensors files, everything else in JSON.

    OUT/checkpoints/step-000200/
        model.safetensors      the trained module's state dict (tied tensors stored once, aliases in state.json)
        optimizer.safetensors  AdamW moments, keyed ``<param name>/<key>``; the RNG states of every rank
        state.json             step, stage, schedule, optimizer param groups, data position, config, aliases

A checkpoint is written into a hidden temporary folder next to its final place and renamed when complete, so
``latest_checkpoint`` never sees a half-written one. Optimizer state is keyed by parameter *name*, not position,
so the same file serves plain, DDP and FSDP runs.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from regionlm.data.io import atomic_write_json, read_json
from regionlm.errors import RegionLMError

FORMAT = 1
_NAME = re.compile(r"^step-(\d{6,})$")


def checkpoint_dir(out_dir) -> Path:
    return Path(out_dir) / "checkpoints"


def list_checkpoints(out_dir) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders are hidden and never match)."""
    root = checkpoint_dir(out_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out_dir) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


# ------------------------------------------------------------------------------------------------ tensors


def _dedupe(state: dict) -> tuple[dict, dict]:
    """safetensors refuses tensors sharing memory (tied embeddings): keep the first name, alias the others."""
    seen, unique, aliases = {}, {}, {}
    for name, t in state.items():
        t = t.detach()
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype) if t.numel() else None
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        unique[name] = t.to("cpu").contiguous()
    return unique, aliases


def split_optimizer_state(optim_state: dict) -> tuple[dict, dict]:
    """A name-keyed optimizer state dict {"state": {name: {k: v}}, "param_groups": [...]} -> (tensors, JSON)."""
    tensors, scalars = {}, {}
    for name, entry in optim_state["state"].items():
        for k, v in entry.items():
            if torch.is_tensor(v):
                tensors[f"{name}/{k}"] = v.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(name, {})[k] = v
    return tensors, {"scalars": scalars, "param_groups": optim_state["param_groups"]}


def join_optimizer_state(tensors: dict, meta: dict) -> dict:
    state: dict = {}
    for key, t in tensors.items():
        name, _, k = key.rpartition("/")
        state.setdefault(name, {})[k] = t
    for name, entry in meta["scalars"].items():
        state.setdefault(name, {}).update(entry)
    groups = [dict(g) for g in meta["param_groups"]]
    for g in groups:  # JSON turned tuples into lists; AdamW stores betas as a tuple
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


def optimizer_state_by_name(optimizer: torch.optim.Optimizer, names: dict) -> dict:
    """Plain ``optimizer.state_dict()`` with parameter indices replaced by names (``names``: id(param) -> name)."""
    sd = optimizer.state_dict()
    index_to_name = {}
    i = 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            index_to_name[i] = names[id(p)]
            i += 1
    state = {index_to_name[i]: v for i, v in sd["state"].items()}
    groups = [{**g, "params": [index_to_name[i] for i in g["params"]]} for g in sd["param_groups"]]
    return {"state": state, "param_groups": groups}


def load_optimizer_state_by_name(optimizer: torch.optim.Optimizer, names: dict, state: dict) -> None:
    name_to_index, i = {}, 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            name_to_index[names[id(p)]] = i
            i += 1
    saved = [n for g in state["param_groups"] for n in g["params"]]
    if sorted(saved) != sorted(name_to_index):
        raise RegionLMError("checkpoint: its optimizer holds other parameters than this run trains "
                            "(the model or the stage's trainable parts changed)")
    sd = {"state": {name_to_index[n]: v for n, v in state["state"].items()},
          "param_groups": [{**g, "params": [name_to_index[n] for n in g["params"]]} for g in state["param_groups"]]}
    optimizer.load_state_dict(sd)


# ------------------------------------------------------------------------------------------------ RNG


def _f64_bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", float(x)))[0]


def _bits_f64(n: int) -> float:
    return struct.unpack("<d", struct.pack("<q", int(n)))[0]


def pack_rng() -> torch.Tensor:
    """This process's torch (+ CUDA), numpy and python RNG states as one int64 vector (fixed length on a given
    machine), so that ranks can all_gather it as a tensor and no RNG state needs pickle."""
    parts = [torch.get_rng_state().to(torch.int64)]
    if torch.cuda.is_available():
        cuda = torch.cuda.get_rng_state().to(torch.int64)
        parts += [torch.tensor([cuda.numel()]), cuda]
    else:
        parts.append(torch.tensor([0]))
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    parts += [torch.from_numpy(keys.astype(np.int64)), torch.tensor([pos, has_gauss, _f64_bits(cached)])]
    version, internal, gauss = random.getstate()
    parts += [torch.tensor([version, len(internal)]), torch.tensor(internal, dtype=torch.int64),
              torch.tensor([0 if gauss is None else 1, _f64_bits(gauss or 0.0)])]
    return torch.cat(parts)


def unpack_rng(t: torch.Tensor) -> None:
    t = t.to("cpu", torch.int64)
    n_torch = torch.get_rng_state().numel()
    torch.set_rng_state(t[:n_torch].to(torch.uint8))
    i = n_torch
    n_cuda = int(t[i])
    i += 1
    if n_cuda:
        if torch.cuda.is_available():
            torch.cuda.set_rng_state(t[i:i + n_cuda].to(torch.uint8))
        i += n_cuda
    keys = t[i:i + 624].numpy().astype(np.uint32)
    pos, has_gauss, cached = (int(v) for v in t[i + 624:i + 627])
    np.random.set_state(("MT19937", keys, pos, has_gauss, _bits_f64(cached)))
    i += 627
    version, n = int(t[i]), int(t[i + 1])
    internal = tuple(int(v) for v in t[i + 2:i + 2 + n])
    flag, gauss = int(t[i + 2 + n]), _bits_f64(int(t[i + 3 + n]))
    random.setstate((version, internal, gauss if flag else None))


# ------------------------------------------------------------------------------------------------ save / load


@dataclass
class Checkpoint:
    path: Path
    state: dict  # state.json
    model: dict  # name -> tensor (aliases filled in)
    optimizer: dict  # name-keyed optimizer state dict
    rng: torch.Tensor  # (world size, n) packed RNG states


def save_checkpoint(out_dir, step: int, model_state: dict, optim_state: dict, rng: torch.Tensor, state: dict,
                    keep: int) -> Path:
    """Write checkpoint ``step`` atomically (temporary folder + rename) and drop all but the newest ``keep``."""
    root = checkpoint_dir(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{final.name}-"))
    try:
        tensors, aliases = _dedupe(model_state)
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        opt_tensors, opt_meta = split_optimizer_state(optim_state)
        opt_tensors["rng"] = rng.to("cpu", torch.int64).contiguous()
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        atomic_write_json(tmp / "state.json", {"format": FORMAT, **state, "model_aliases": aliases,
                                               "optimizer": opt_meta})
        if final.exists():  # a rerun of the same step (e.g. after --resume at the end): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(out_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path) -> Checkpoint:
    path = Path(path)
    for name in ("model.safetensors", "optimizer.safetensors", "state.json"):
        if not (path / name).is_file():
            raise RegionLMError(f"checkpoint {path}: {name} is missing")
    state = read_json(path / "state.json")
    if state.get("format") != FORMAT:
        raise RegionLMError(f"checkpoint {path}: format {state.get('format')!r}, this version reads {FORMAT}")
    model = load_file(str(path / "model.safetensors"))
    for alias, name in state.pop("model_aliases").items():
        model[alias] = model[name]
    opt_tensors = load_file(str(path / "optimizer.safetensors"))
    rng = opt_tensors.pop("rng")
    optimizer = join_optimizer_state(opt_tensors, state.pop("optimizer"))
    return Checkpoint(path, state, model, optimizer, rng)
