"""A torch Dataset over canonical samples: sampled frames plus region masks on those frames.

Each item is a dict:
- `frames`: uint8 tensor (T, H, W, 3); `frame_indices`: int64 tensor (T,), the original frame indices;
- `masks`: bool tensor (R, T, H, W), region r's mask on sampled frame t (all False where not given);
- `given`: bool tensor (R, T), which sampled frames carry a mask (or box) for each region;
- `conversations`, `id`, `task` (None when absent), `video` (the resolved path).

Frame sampling always keeps the annotated frames (`keep=`), so every annotation lands on a sampled frame.
A region frame with only a box becomes a filled box mask. `errors` applies when the samples are loaded
(bad records are skipped and listed in `.skipped`); a problem found only when reading the video (an
annotated frame past its end, a size that differs from the record) raises DataFormatError in __getitem__.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from regionlm.data.canonical import check_sample, load_canonical, validate_canonical
from regionlm.errors import DataFormatError, RegionError, VideoError
from regionlm.regions import box_to_mask, decode_segmentation
from regionlm.video import VideoReader, sample_indices

SAMPLINGS = ("uniform", "fps", "given")


class RegionVideoDataset(Dataset):
    """Canonical samples (a list, or a JSON/JSONL file) as model-ready items.

    sampling: "uniform" (`num_frames` frames over the video), "fps" (`fps` frames per second; frame
    folders need `folder_fps`), or "given" (exactly the annotated frames). Relative video paths are resolved
    against `video_root` (default: the annotation file's folder, or the working directory for a list).
    """

    def __init__(self, samples_or_path, video_root: str | os.PathLike | None = None, num_frames: int = 16,
                 sampling: str = "uniform", fps: float | None = None, errors: str = "raise",
                 folder_fps: float | None = None):
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        if sampling == "fps" and not fps:
            raise ValueError("sampling='fps' needs fps")
        if isinstance(samples_or_path, (str, os.PathLike)):
            self.source = str(samples_or_path)
            result = load_canonical(samples_or_path, errors=errors)
            default_root = Path(samples_or_path).parent
        else:
            self.source = "<samples>"
            result = validate_canonical(list(samples_or_path), errors=errors)
            default_root = Path.cwd()
        self.samples: list[dict] = result.records
        self.skipped = result.skipped
        self.video_root = Path(video_root) if video_root is not None else default_root
        self.num_frames, self.sampling, self.fps, self.folder_fps = num_frames, sampling, fps, folder_fps

    def __len__(self) -> int:
        return len(self.samples)

    def video_path(self, sample: dict) -> Path:
        path = Path(sample["video"])
        return path if path.is_absolute() else self.video_root / path

    def __getitem__(self, i: int) -> dict:
        sample = self.samples[i]
        regions = check_sample(sample, file=self.source, index=i)
        annotated = sorted({t for r in regions for t in r.frames})
        path = self.video_path(sample)

        def bad(field: str, reason: str) -> DataFormatError:
            return DataFormatError(self.source, sample["id"], field, reason)

        with VideoReader(path, folder_fps=self.folder_fps) as reader:
            n, h, w = reader.num_frames, reader.height, reader.width
            for r, region in enumerate(regions):
                for t in region.frames:
                    if t >= n:
                        where = "annotation" if t in region.masks else "boxes"
                        raise bad(f'{where}[{r}]["{t}"]', f"frame {t} is out of range: video {path} has {n} frames")
            if sample.get("height") is not None and (sample["height"], sample["width"]) != (h, w):
                raise bad("height", f"the record says {sample['width']}x{sample['height']} (WxH) but video "
                                    f"{path} is {w}x{h}")
            if self.sampling == "uniform":
                indices = sample_indices(n, num=self.num_frames, keep=annotated)
            elif self.sampling == "fps":
                indices = sample_indices(n, fps=self.fps, video_fps=reader.fps, keep=annotated)
            else:
                if not annotated:
                    raise bad("annotation", "sampling='given' needs annotated frames")
                indices = sample_indices(n, indices=annotated)
            frames = reader.get_frames(indices)

        position = {t: k for k, t in enumerate(indices)}
        masks = np.zeros((len(regions), len(indices), h, w), dtype=bool)
        given = np.zeros((len(regions), len(indices)), dtype=bool)
        for r, region in enumerate(regions):
            for t in region.frames:
                k = position[t]  # keep= guarantees every annotated frame was sampled
                if t in region.masks:
                    try:
                        masks[r, k] = decode_segmentation(region.masks[t], h, w)
                    except RegionError as err:
                        raise bad(f'annotation[{r}]["{t}"].segmentation', str(err)) from None
                else:
                    masks[r, k] = box_to_mask(region.boxes[t], h, w)
                given[r, k] = True
        return {
            "frames": torch.from_numpy(frames),
            "frame_indices": torch.tensor(indices, dtype=torch.int64),
            "masks": torch.from_numpy(masks),
            "given": torch.from_numpy(given),
            "conversations": sample["conversations"],
            "id": sample["id"],
            "task": sample.get("task"),
            "video": str(path),
        }


def collate_regions(batch: list[dict]) -> dict:
    """Batch dataset items: stack frames (all items must share T, H, W), pad regions with empty masks.

    Adds `region_valid` (B, R): False for padding regions. Text fields stay lists.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    shapes = [tuple(item["frames"].shape) for item in batch]
    if len(set(shapes)) > 1:
        listing = ", ".join(f"{item['id']!r}: {s[0]} frames of {s[2]}x{s[1]}" for item, s in zip(batch, shapes))
        raise VideoError(f"cannot batch samples whose frames differ in count or size ({listing}); use videos of one "
                         f"size and a num_frames at least the number of annotated frames, or batch size 1")
    bsz, (t, h, w, _) = len(batch), shapes[0]
    num_regions = max(item["masks"].shape[0] for item in batch)
    masks = torch.zeros((bsz, num_regions, t, h, w), dtype=torch.bool)
    given = torch.zeros((bsz, num_regions, t), dtype=torch.bool)
    valid = torch.zeros((bsz, num_regions), dtype=torch.bool)
    for b, item in enumerate(batch):
        r = item["masks"].shape[0]
        masks[b, :r], given[b, :r], valid[b, :r] = item["masks"], item["given"], True
    out = {
        "frames": torch.stack([item["frames"] for item in batch]),
        "frame_indices": torch.stack([item["frame_indices"] for item in batch]),
        "masks": masks,
        "given": given,
        "region_valid": valid,
    }
    for key in ("conversations", "id", "task", "video"):
        out[key] = [item.get(key) for item in batch]
    return out
