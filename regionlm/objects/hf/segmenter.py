"""Promptable segmenter from a local checkpoint (``hf-sam``): SAM, SAM 2 (a ``sam2`` image checkpoint or the image
part of a ``sam2_video`` one) or the SAM 3 tracker (``sam3_tracker`` / ``sam3_tracker_video``), picked by the
folder's ``model_type``.

The SAM 2 / SAM 3 image processors cannot be imported without torchvision, so frames are resized and normalised
here, the way each model was trained: SAM resizes the longest side and pads bottom/right to a square, SAM 2 and
SAM 3 resize to the square. Prompt coordinates are scaled the same way and masks are brought back to the frame's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from regionlm.errors import RegionLMError
from regionlm.objects.base import Segmenter, register
from regionlm.objects.hf.checkpoint import (HALF, IMAGENET_MEAN, IMAGENET_STD, as_points, build_config, check_frame,
                                            image_stats, load_model, model_type_of, torch_device)
from regionlm.objects.hf.images import Geometry, masks_to_frame, preprocess


@dataclass
class HFSegmenterConfig:
    checkpoint: Optional[str] = None
    device: str = "cpu"
    mask_threshold: float = 0.0  # on the mask logits
    batch_size: int = 64  # prompts per mask-decoder call; the image is encoded once per frame

    def __post_init__(self):
        if self.batch_size < 1:
            raise RegionLMError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class _Family:
    model_class: str
    square: bool  # True: resize to the square (SAM 2, SAM 3); False: longest side + pad (SAM)
    part_of_checkpoint: bool = False  # the folder holds a bigger model (video) whose image part is loaded
    stats: tuple = (IMAGENET_MEAN, IMAGENET_STD)  # mean/std when the folder has no preprocessor config


# model_type -> how the model is built and fed
FAMILIES = {
    "sam": _Family("SamModel", square=False),
    "sam2": _Family("Sam2Model", square=True),
    "sam2_video": _Family("Sam2Model", square=True, part_of_checkpoint=True),
    "sam3_tracker": _Family("Sam3TrackerModel", square=True, stats=(HALF, HALF)),
    "sam3_tracker_video": _Family("Sam3TrackerModel", square=True, part_of_checkpoint=True, stats=(HALF, HALF)),
}


@register("segmenter", "hf-sam")
class HFSamSegmenter(Segmenter):
    part = "hf-sam segmenter"

    def __init__(self, checkpoint=None, device="cpu", **options):
        import transformers

        self.config = build_config(HFSegmenterConfig, self.part, checkpoint, device, options)
        self.path, self.model_type = model_type_of(checkpoint, self.part, FAMILIES)
        self.family = FAMILIES[self.model_type]
        self.device = torch_device(device)
        self.model = load_model(getattr(transformers, self.family.model_class), self.path, self.device,
                                subset_of=self.family.part_of_checkpoint)
        self.side = int(self.model.config.prompt_encoder_config.image_size)
        self.mean, self.std = image_stats(self.path, self.family.stats)

    def segment(self, frame: np.ndarray, boxes: Optional[np.ndarray] = None,
                points: Optional[np.ndarray] = None) -> np.ndarray:
        import torch

        frame = check_frame(frame)
        height, width = frame.shape[:2]
        boxes = as_points(boxes, "boxes", 4)
        points = as_points(points, "points", 2)
        if boxes is None and points is None:
            raise RegionLMError(f"{self.part}: give boxes (N, 4) or points (N, 2) to segment")
        if boxes is not None and points is not None and len(boxes) != len(points):
            raise RegionLMError(f"{self.part}: {len(boxes)} boxes but {len(points)} points; give one of each per "
                                f"object, or only one kind")
        n = len(boxes) if boxes is not None else len(points)
        if n == 0:
            return np.zeros((0, height, width), dtype=bool)

        geometry = Geometry(height, width, self.side, self.family.square)
        scale = np.array([geometry.sx, geometry.sy], dtype=np.float32)
        # One point alone is ambiguous (part or whole): ask for 3 masks and keep the best-scored, as SAM does.
        multimask = boxes is None
        out = []
        with torch.inference_mode():
            embeddings = self.model.get_image_embeddings(
                preprocess(frame, geometry, self.mean, self.std, self.device))
            for start in range(0, n, self.config.batch_size):
                chunk = slice(start, min(n, start + self.config.batch_size))
                kwargs = {}
                if boxes is not None:
                    b = boxes[chunk].reshape(-1, 2, 2) * scale
                    kwargs["input_boxes"] = torch.from_numpy(b.reshape(1, -1, 4)).to(self.device)
                if points is not None:
                    p = points[chunk] * scale
                    kwargs["input_points"] = torch.from_numpy(p.reshape(1, -1, 1, 2)).to(self.device)
                    kwargs["input_labels"] = torch.ones(1, len(p), 1, dtype=torch.long, device=self.device)
                result = self.model(image_embeddings=embeddings, multimask_output=multimask, **kwargs)
                pred = result.pred_masks[0]  # (n, k, h, w)
                best = result.iou_scores[0].argmax(dim=-1)  # (n,)
                low_res = pred[torch.arange(len(best), device=pred.device), best]
                out.append(masks_to_frame(low_res, geometry, self.config.mask_threshold))
        return np.concatenate(out, axis=0)
