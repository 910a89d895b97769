"""davis: semi-supervised video object segmentation (DAVIS 2016 / 2017), scored with davis2017-evaluation's
J, F and J&F.

--data is a DAVIS root (``JPEGImages/480p/<seq>/``, ``Annotations/480p/<seq>/``) or one ``frames/`` + ``masks/``
pair (see regionlm.data.davis). The system gets the frames and every object's mask on the first frame
(``regions[k] = {0: {"segmentation": RLE}}``, objects in id order) and gives a mask per object per frame.

Predictions (``--predictions``): JSONL lines ``{"id": <sequence>, "masks": {"<object id>": [RLE or null per
frame]}}`` (``null`` = empty), or a DAVIS results folder ``DIR/<sequence>/<frame stem>.png`` of label maps (value
= object id). Metrics (percent, as papers print them): ``jf_mean``, ``j_mean``, ``f_mean`` and the recalls and
decays; the first and last frames are not scored and no void mask is used (the official semi-supervised setting).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ...data.davis import load_davis
from ...errors import DataFormatError, RegionLMError
from ...regions import mask_to_rle, rle_to_mask
from ..metrics.vos import evaluate_vos_sequences
from .base import Benchmark, Sample, Scores
from .registry import register_benchmark

VOS_KEYS = ("jf_mean", "j_mean", "f_mean", "j_recall", "j_decay", "f_recall", "f_decay")


@register_benchmark("davis")
class Davis(Benchmark):
    task = "segment"
    summary = "DAVIS semi-supervised video object segmentation (J, F, J&F)"
    data_help = "a DAVIS root (JPEGImages/480p, Annotations/480p) or a frames/ + masks/ folder pair"
    headline = ("jf_mean", "j_mean", "f_mean")

    def load(self) -> list:
        seqs = load_davis(self.data).records
        for seq in seqs:
            if not seq.annotated.all():
                raise DataFormatError(self.data, seq.name, None,
                                      f"masks on {int(seq.annotated.sum())} of {len(seq)} frames; scoring needs a "
                                      f"ground-truth mask on every frame")
            if not seq.masks:
                raise DataFormatError(self.data, seq.name, None, "no object in the masks")
        return seqs

    def samples(self, items: list) -> list[Sample]:
        out = []
        for seq in items:
            h, w = seq.void.shape[1:]
            regions = tuple({0: {"segmentation": mask_to_rle(seq.masks[k][0])}} for k in seq.object_ids)
            out.append(Sample(id=seq.name, task=self.task, video=str(seq.frames[0].parent),
                              frames=tuple(str(f) for f in seq.frames), num_frames=len(seq), regions=regions,
                              frame_idx=0,
                              object_ids=tuple(seq.object_ids),
                              height=int(h), width=int(w)))
        return out

    def score(self, items: list, predictions: dict) -> Scores:
        sequences, per_sample = [], []
        for seq in items:
            gt = np.stack([seq.masks[k] for k in seq.object_ids])
            pred = decode_prediction(seq.name, predictions[seq.name], seq.object_ids, gt.shape[1:])
            sequences.append((gt, pred))
        try:
            res = evaluate_vos_sequences(sequences)
        except ValueError as err:
            raise RegionLMError(f"davis: {err}") from None
        for seq, r in zip(items, res["per_sequence"]):
            per_sample.append({"id": seq.name, "objects": seq.object_ids, "jf": 100.0 * r["JF"],
                               "j_mean": 100.0 * r["J"]["mean"], "f_mean": 100.0 * r["F"]["mean"],
                               "masks": predictions[seq.name]})
        metrics = {"jf_mean": 100.0 * res["JF"], "j_mean": 100.0 * res["J"]["mean"], "f_mean": 100.0 * res["F"]["mean"],
                   "j_recall": 100.0 * res["J"]["recall"], "j_decay": 100.0 * res["J"]["decay"],
                   "f_recall": 100.0 * res["F"]["recall"], "f_decay": 100.0 * res["F"]["decay"]}
        n_objects = sum(len(s.object_ids) for s in items)
        return Scores(metrics=metrics, per_sample=per_sample, details={"n_objects": n_objects})


def decode_prediction(name: str, masks: dict, object_ids: list, shape: tuple) -> np.ndarray:
    """``{object id: [RLE or None per frame]}`` -> (K, T, H, W) bool in ``object_ids`` order (missing objects are
    empty, as in the toolkit). One-line errors name the sequence."""
    t, h, w = shape
    extra = sorted(set(masks) - {str(k) for k in object_ids})
    if extra:
        raise RegionLMError(f"sequence {name}: predicted object ids {extra} are not in the ground truth "
                            f"{[str(k) for k in object_ids]}")
    out = np.zeros((len(object_ids), t, h, w), dtype=bool)
    for i, k in enumerate(object_ids):
        frames = masks.get(str(k))
        if frames is None:
            continue
        if len(frames) != t:
            raise RegionLMError(f"sequence {name}, object {k}: {len(frames)} predicted masks for {t} frames")
        for f, rle in enumerate(frames):
            if rle is None:
                continue
            m = rle_to_mask(rle)
            if m.shape != (h, w):
                raise RegionLMError(f"sequence {name}, object {k}, frame {f}: mask is {m.shape[1]}x{m.shape[0]}, "
                                    f"the frames are {w}x{h}")
            out[i, f] = m
    return out


def read_results_folder(folder: Path, sample: Sample) -> dict:
    """DAVIS results PNGs ``folder/<sequence>/<frame stem>.png`` (label maps) -> ``{object id: [RLE, ...]}``;
    None when the sequence folder is absent."""
    seq_dir = Path(folder) / sample.id
    if not seq_dir.is_dir():
        return None
    out = {str(k): [] for k in sample.object_ids}
    for frame in sample.frames:
        png = seq_dir / (Path(frame).stem + ".png")
        if not png.is_file():
            raise RegionLMError(f"{seq_dir}: no {png.name} for frame {Path(frame).name}")
        with Image.open(png) as im:
            labels = np.asarray(im.convert("L") if im.mode not in ("P", "L") else im)
        if tuple(sample.object_ids) == (1,):
            labels = np.where(labels == 255, 1, labels)  # DAVIS-2016 results store the one object as 255
        for k in sample.object_ids:
            out[str(k)].append(mask_to_rle(labels == k))
    return out
