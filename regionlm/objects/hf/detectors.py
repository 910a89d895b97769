"""Open-vocabulary detectors from a local checkpoint: OWLv2 and Grounding DINO (``hf-owlv2``, ``hf-grounding-dino``,
and ``hf``, which picks one by the folder's ``model_type``).

Both return boxes in pixels of the input frame (xyxy, clipped to it), one label per box taken from the prompts,
best score first, after class-agnostic NMS: the pipeline wants one box per object, not one per (object, label).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from regionlm.errors import RegionLMError
from regionlm.objects.base import Detections, Detector, register
from regionlm.objects.hf.checkpoint import (build_config, check_frame, clean_prompts, load_model, load_processor,
                                            model_type_of, nms, torch_device)


@dataclass
class HFDetectorConfig:
    checkpoint: Optional[str] = None
    device: str = "cpu"
    # Minimum score kept; None = the model's usual value (OWLv2 0.1, Grounding DINO 0.3 as in their demos).
    threshold: Optional[float] = None
    # OWLv2 without prompts is class-agnostic: its objectness head scores every patch box (label "object").
    objectness_threshold: float = 0.1
    nms_iou: float = 0.5  # 1.0 keeps overlapping boxes
    max_detections: int = 100
    # Grounding DINO always needs text: what it looks for when no prompt is given.
    default_prompts: tuple = ("object",)

    def __post_init__(self):
        if self.max_detections < 1:
            raise RegionLMError(f"max_detections must be >= 1, got {self.max_detections}")
        if not 0.0 <= self.nms_iou <= 1.0:
            raise RegionLMError(f"nms_iou must be in [0, 1], got {self.nms_iou}")


def _cxcywh_to_xyxy(boxes):
    import torch

    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def _finish(boxes: np.ndarray, scores: np.ndarray, labels: list[str], width: int, height: int,
            threshold: float, cfg: HFDetectorConfig) -> Detections:
    """Clip to the frame, drop low scores and empty boxes, NMS, best first, at most max_detections."""
    boxes = boxes.astype(np.float32).reshape(-1, 4)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    keep = np.flatnonzero((scores > threshold) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
    boxes, scores = boxes[keep], scores[keep]
    labels = [labels[i] for i in keep]
    order = nms(boxes, scores, cfg.nms_iou)[: cfg.max_detections]
    return Detections(boxes[order], scores[order], [labels[i] for i in order])


class _HFDetector(Detector):
    part = "hf detector"
    model_types: tuple = ()
    default_threshold = 0.1

    def __init__(self, checkpoint=None, device="cpu", **options):
        self.config = build_config(HFDetectorConfig, self.part, checkpoint, device, options)
        self.path, self.model_type = model_type_of(checkpoint, self.part, self.model_types)
        self.device = torch_device(device)
        self.processor = load_processor(self.path)
        self.model = load_model(self._model_class(), self.path, self.device)
        self.threshold = self.default_threshold if self.config.threshold is None else float(self.config.threshold)

    def _model_class(self):
        raise NotImplementedError


@register("detector", "hf-owlv2")
class OWLv2Detector(_HFDetector):
    """OWLv2 (google/owlv2-*): one text query per prompt; no prompt = class-agnostic objectness boxes."""

    part = "hf-owlv2 detector"
    model_types = ("owlv2",)
    default_threshold = 0.1

    def _model_class(self):
        from transformers import Owlv2ForObjectDetection

        return Owlv2ForObjectDetection

    def detect(self, frame: np.ndarray, prompts: Optional[Sequence[str]] = None) -> Detections:
        import torch
        from PIL import Image

        frame = check_frame(frame)
        height, width = frame.shape[:2]
        labels = clean_prompts(prompts)
        pixels = self.processor.image_processor(images=Image.fromarray(frame), return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.device)
        with torch.inference_mode():
            if labels:
                text = self.processor.tokenizer(labels, padding="max_length", truncation=True, return_tensors="pt",
                                                max_length=self.model.config.text_config.max_position_embeddings)
                out = self.model(input_ids=text["input_ids"].to(self.device),
                                 attention_mask=text["attention_mask"].to(self.device), pixel_values=pixels)
                scores, best = out.logits[0].sigmoid().max(dim=-1)
                boxes = out.pred_boxes[0]
                names = [labels[i] for i in best.tolist()]
                threshold = self.threshold
            else:
                feature_map = self.model.image_embedder(pixel_values=pixels)[0]
                b, ph, pw, c = feature_map.shape
                feats = feature_map.reshape(b, ph * pw, c)
                scores = self.model.objectness_predictor(feats)[0].sigmoid()
                boxes = self.model.box_predictor(feats, feature_map)[0]
                names = ["object"] * len(scores)
                threshold = self.config.objectness_threshold
        # Boxes are relative to the square the processor padded the frame to (bottom/right), of side max(h, w).
        xyxy = (_cxcywh_to_xyxy(boxes.float()) * max(height, width)).cpu().numpy()
        return _finish(xyxy, scores.float().cpu().numpy(), names, width, height, threshold, self.config)


@register("detector", "hf-grounding-dino")
class GroundingDinoDetector(_HFDetector):
    """Grounding DINO (IDEA-Research/grounding-dino-*): prompts joined as "a. b. c."; each box takes the prompt
    whose tokens it matches best (max token probability within that prompt's phrase)."""

    part = "hf-grounding-dino detector"
    model_types = ("grounding-dino",)
    default_threshold = 0.3

    def _model_class(self):
        from transformers import GroundingDinoForObjectDetection

        return GroundingDinoForObjectDetection

    def _phrase_spans(self, input_ids: list[int]) -> list[list[int]]:
        """Token positions of each phrase: runs of tokens between "." separators and [CLS]/[SEP]/[PAD] ([UNK] stays:
        a word the vocabulary lacks is still part of its phrase)."""
        tokenizer = self.processor.tokenizer
        stops = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
                 tokenizer.convert_tokens_to_ids(".")}
        spans, current = [], []
        for pos, tok in enumerate(input_ids):
            if tok in stops:
                if current:
                    spans.append(current)
                current = []
            else:
                current.append(pos)
        if current:
            spans.append(current)
        return spans

    def detect(self, frame: np.ndarray, prompts: Optional[Sequence[str]] = None) -> Detections:
        import torch
        from PIL import Image

        frame = check_frame(frame)
        height, width = frame.shape[:2]
        labels = clean_prompts(prompts) or clean_prompts(list(self.config.default_prompts))
        # "." separates phrases in Grounding DINO's text, so it cannot appear inside one.
        phrases = [" ".join(label.replace(".", " ").split()).lower() for label in labels]
        keep = [i for i, p in enumerate(phrases) if p]
        labels, phrases = [labels[i] for i in keep], [phrases[i] for i in keep]
        if not labels:
            raise RegionLMError(f"hf-grounding-dino detector: no usable text prompt in {prompts!r}")
        inputs = self.processor(images=Image.fromarray(frame), text=". ".join(phrases) + ".", return_tensors="pt")
        input_ids = inputs["input_ids"][0].tolist()
        max_len = self.model.config.max_text_len
        if len(input_ids) > max_len:
            raise RegionLMError(f"hf-grounding-dino detector: the prompts take {len(input_ids)} tokens, more than "
                                f"the model's max_text_len {max_len}; give fewer prompts")
        spans = self._phrase_spans(input_ids)
        if len(spans) != len(labels):
            raise RegionLMError(f"hf-grounding-dino detector: prompts {labels} tokenise to {len(spans)} phrases")
        with torch.inference_mode():
            out = self.model(**{k: v.to(self.device) for k, v in inputs.items()})
            probs = out.logits[0].float().sigmoid()  # (queries, max_text_len)
            per_phrase = torch.stack([probs[:, span].max(dim=-1).values for span in spans], dim=-1)
            scores, best = per_phrase.max(dim=-1)
            # Boxes are relative to the frame itself (padding is masked out by pixel_mask).
            scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=probs.device)
            xyxy = (_cxcywh_to_xyxy(out.pred_boxes[0].float()) * scale).cpu().numpy()
        names = [labels[i] for i in best.tolist()]
        return _finish(xyxy, scores.cpu().numpy(), names, width, height, self.threshold, self.config)


DETECTORS_BY_MODEL_TYPE = {"owlv2": OWLv2Detector, "grounding-dino": GroundingDinoDetector}


@register("detector", "hf")
def hf_detector(checkpoint=None, device="cpu", **options) -> Detector:
    """The detector the folder holds, picked by its config.json model_type."""
    _, model_type = model_type_of(checkpoint, "hf detector", DETECTORS_BY_MODEL_TYPE)
    return DETECTORS_BY_MODEL_TYPE[model_type](checkpoint=checkpoint, device=device, **options)
