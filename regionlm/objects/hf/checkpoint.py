"""What every hf part needs: a checkpoint folder of the right kind, a torch device, frames and prompts checked,
and the few box ops that would otherwise come from torchvision (which must stay out of the environment)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import fields
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from regionlm.errors import RegionError, RegionLMError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # SAM, SAM 2
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)  # SAM 3 normalises to [-1, 1]


def model_type_of(checkpoint, part: str, allowed: Iterable[str]) -> tuple[Path, str]:
    """The folder and its ``config.json`` ``model_type``; a one-line error when the folder is missing, is not a
    Hugging Face checkpoint, or holds another kind of model than ``allowed``."""
    allowed = tuple(allowed)
    expected = " or ".join(repr(a) for a in allowed)
    if checkpoint is None or str(checkpoint).strip() == "":
        raise RegionLMError(f"the {part} needs checkpoint=DIR: a local folder with a model of type {expected}")
    path = Path(checkpoint).expanduser()
    if not path.is_dir():
        raise RegionLMError(f"{part} checkpoint {path}: folder not found (expected a Hugging Face checkpoint "
                            f"folder of model_type {expected})")
    config = path / "config.json"
    if not config.is_file():
        raise RegionLMError(f"{part} checkpoint {path}: no config.json (expected a Hugging Face checkpoint folder "
                            f"of model_type {expected})")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise RegionLMError(f"{part} checkpoint {path}: config.json is not a JSON object ({err})") from None
    if model_type not in allowed:
        raise RegionLMError(f"{part} checkpoint {path}: model_type {model_type!r}, expected {expected}")
    return path, model_type


def torch_device(device):
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise RegionLMError(f"device {device!r}: not a torch device ({err})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RegionLMError(f"device {device!r}: CUDA is not available on this machine; use device='cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RegionLMError(f"device {device!r}: MPS is not available on this machine; use device='cpu'")
    return dev


def _one_line(err: Exception) -> str:
    return re.sub(r"\s+", " ", str(err)).strip()[:300]


class _SubsetCheckpoint(logging.Filter):
    """Drops transformers' "model of type X to instantiate a model of type Y" note where that is intended (the
    image model of a video checkpoint); any other message still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "to instantiate a model of type" not in record.getMessage()


def load_model(cls, path: Path, device, subset_of: bool = False):
    """``cls.from_pretrained`` from the local folder only (never the network) and from safetensors only (a
    pickled ``pytorch_model.bin`` is never loaded), in eval mode on ``device``.
    ``subset_of``: the folder holds a bigger model of which ``cls`` is a part (SAM 2 image model of a video one)."""
    logger = logging.getLogger("transformers.configuration_utils")
    quiet = _SubsetCheckpoint()
    if subset_of:
        logger.addFilter(quiet)
    try:
        model = cls.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise RegionLMError(f"checkpoint {path}: cannot load {cls.__name__}: {_one_line(err)}") from None
    finally:
        logger.removeFilter(quiet)
    return model.to(device).eval()


def load_processor(path: Path):
    """The folder's own processor (image processor + tokenizer files saved next to the weights)."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RegionLMError(f"checkpoint {path}: cannot load its processor (preprocessor_config.json and tokenizer "
                            f"files are needed next to the weights): {_one_line(err)}") from None


def image_stats(path: Path, default=(IMAGENET_MEAN, IMAGENET_STD),
                names=("preprocessor_config.json", "video_preprocessor_config.json")):
    """Normalisation mean/std from the folder's preprocessor config when it has one, else the model family's."""
    for name in names:
        file = path / name
        if file.is_file():
            try:
                cfg = json.loads(file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            mean, std = cfg.get("image_mean"), cfg.get("image_std")
            if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3:
                return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    return default


def build_config(cls, part: str, checkpoint, device, options: dict):
    """A part's config dataclass from keyword options; unknown options are a one-line error listing the known."""
    known = {f.name for f in fields(cls)} - {"checkpoint", "device"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RegionLMError(f"{part}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(checkpoint=checkpoint, device=device, **options)


def check_frame(frame) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise RegionLMError(f"a frame must be an (H, W, 3) RGB array, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise RegionLMError(f"a frame must be uint8 RGB, got dtype {frame.dtype}")
    return frame


def clean_prompts(prompts) -> list[str]:
    """Text prompts as a list of distinct non-empty labels; one string is split on commas ("person, ball")."""
    if prompts is None:
        return []
    if isinstance(prompts, str):
        prompts = prompts.split(",")
    out = []
    for p in prompts:
        if not isinstance(p, str):
            raise RegionLMError(f"a text prompt must be a string, got {type(p).__name__}: {p!r:.40}")
        p = " ".join(p.split())
        if p and p not in out:
            out.append(p)
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes (N, 4) x (M, 4)."""
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices kept, best score first (iou_threshold >= 1 keeps all)."""
    order = np.argsort(-scores, kind="stable")
    if iou_threshold >= 1.0 or len(order) <= 1:
        return order
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def check_masks(masks: dict, height: int, width: int) -> dict[int, np.ndarray]:
    """Tracker inputs: id -> bool mask of the frame's size."""
    if not isinstance(masks, dict):
        raise RegionError(f"masks must be a dict of object id -> (H, W) mask, got {type(masks).__name__}")
    out = {}
    for obj_id, mask in masks.items():
        mask = np.asarray(mask)
        if mask.shape != (height, width):
            raise RegionError(f"mask of object {obj_id}: shape {mask.shape} differs from the frame "
                              f"{height}x{width} (HxW)")
        out[int(obj_id)] = mask != 0
    return out


def as_points(points: Optional[np.ndarray], what: str, width: int) -> Optional[np.ndarray]:
    if points is None:
        return None
    arr = np.asarray(points, dtype=np.float32)
    if arr.size == 0:
        return arr.reshape(0, width)
    if arr.ndim != 2 or arr.shape[1] != width or not np.isfinite(arr).all():
        raise RegionLMError(f"{what} must be an (N, {width}) array of finite numbers, got shape {arr.shape}")
    return arr
