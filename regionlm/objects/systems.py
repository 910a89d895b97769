"""Object trackers as evaluation systems: ``regionlm eval --tracker NAME`` on tracking benchmarks (one box per
frame from the first box) and VOS benchmarks (masks on every frame from the first frame's masks).

Names (``EVAL_TRACKERS``):
- ``classical``: the classical box tracker (flow + re-segmented mask fused with CSRT) for tracking benchmarks, the
  classical mask tracker for VOS benchmarks;
- ``csrt``: plain OpenCV CSRT, the reference (tracking benchmarks only).
Frames are read as the tracker goes (a video in chunks), never all at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Optional

import numpy as np

from regionlm.errors import RegionLMError, VideoError
from regionlm.regions import decode_segmentation, mask_to_rle


@dataclass(frozen=True)
class EvalTracker:
    """How a name is served: a box tracker factory (``init``/``update``) and the registry name of a mask
    tracker (``regionlm.objects.create("tracker", ...)``), either None when the name cannot do that task."""

    box: Optional[Callable]
    mask: Optional[str]
    summary: str


def _classical_box():
    from regionlm.objects.classical.track import ClassicalBoxTracker

    return ClassicalBoxTracker()


def _csrt_box():
    from regionlm.objects.classical.track import CSRTBoxTracker

    return CSRTBoxTracker()


EVAL_TRACKERS: dict[str, EvalTracker] = {
    "classical": EvalTracker(_classical_box, "classical", "flow + re-segmentation (masks), fused with CSRT (boxes)"),
    "csrt": EvalTracker(_csrt_box, None, "plain OpenCV CSRT (boxes only)"),
}


def load_eval_tracker(name: str, benchmark=None):
    """The System that ``regionlm eval --tracker NAME`` runs; one-line errors for unknown names and tasks the
    tracker cannot do."""
    spec = EVAL_TRACKERS.get(name)
    if spec is None:
        raise RegionLMError(f"--tracker {name!r}: unknown; available: {', '.join(sorted(EVAL_TRACKERS))}")
    task = getattr(benchmark, "task", None)
    if task == "track" and not getattr(benchmark, "gives_init_box", True):
        raise RegionLMError(f"--tracker {name} needs the first box, and {benchmark.name} gives none (the object is "
                            f"named by an expression)")
    if task == "segment" and spec.mask is None:
        raise RegionLMError(f"--tracker {name} tracks boxes only; it cannot do {benchmark.name} (masks): use "
                            f"--tracker {' or '.join(n for n, s in EVAL_TRACKERS.items() if s.mask)}")
    return TrackerSystem(name, spec)


class TrackerSystem:
    """A tracker answering ``track`` (boxes, xywh) and ``segment`` (masks, COCO RLE) samples."""

    cacheable = True
    needs_video = True  # the runner checks the frames exist before asking

    def __init__(self, name: str, spec: EvalTracker):
        self.name, self.spec = name, spec
        self.config = {"system": "tracker", "tracker": name, "settings": _settings(name)}

    def track(self, sample) -> list:
        if sample.init_box is None:
            raise RegionLMError(f"sample {sample.id}: tracker {self.name} needs the first box (init_box)")
        x, y, w, h = (float(v) for v in sample.init_box)
        tracker = self.spec.box()
        boxes: list = []
        for t, frame in enumerate(iter_sample_frames(sample)):
            if t == 0:
                tracker.init(frame, (x, y, x + w, y + h))
                boxes.append([x, y, w, h])
                continue
            b = tracker.update(frame)
            boxes.append(None if b is None else [b[0], b[1], b[2] - b[0], b[3] - b[1]])
        return boxes

    def segment(self, sample) -> dict:
        from regionlm.objects.base import create

        starts = _first_masks(sample)  # frame -> {object id: mask}
        ids = [str(k) for k in sample.object_ids] or [str(i + 1) for i in range(len(sample.regions))]
        out: dict[str, list] = {k: [] for k in ids}
        tracker, started = create("tracker", self.spec.mask), False
        for t, frame in enumerate(iter_sample_frames(sample)):
            given = starts.get(t, {})
            if not started and given:
                tracker.start(frame, given)
                masks, started = dict(given), True
            elif started:
                masks = tracker.step(frame)
                if given:
                    tracker.add(frame, given)
                    masks.update(given)
            else:
                masks = {}
            for k in ids:
                m = masks.get(k)
                out[k].append(mask_to_rle(m) if m is not None and m.any() else None)
        return out


def _first_masks(sample) -> dict:
    """{frame: {object id: mask}} from the sample's regions (each object's first annotated frame)."""
    ids = [str(k) for k in sample.object_ids] or [str(i + 1) for i in range(len(sample.regions))]
    starts: dict[int, dict] = {}
    for obj_id, region in zip(ids, sample.regions):
        if not region:
            raise RegionLMError(f"sample {sample.id}: object {obj_id} has no mask to start from")
        frame = min(int(f) for f in region)
        entry = region[frame] if frame in region else region[str(frame)]
        seg = entry.get("segmentation", entry) if isinstance(entry, dict) else entry
        mask = decode_segmentation(seg, sample.height, sample.width)
        if not mask.any():
            raise RegionLMError(f"sample {sample.id}: object {obj_id} has an empty mask on frame {frame}")
        starts.setdefault(frame, {})[obj_id] = mask
    return starts


def iter_sample_frames(sample, chunk: int = 32) -> Iterator[np.ndarray]:
    """The sample's frames in order, RGB uint8: its image files, or its frames of the video read in chunks."""
    if sample.frames:
        for path in sample.frames:
            yield _read_image(path)
        return
    if not sample.video:
        raise RegionLMError(f"sample {sample.id}: no frames and no video to track in")
    from regionlm.video import VideoReader

    with VideoReader(sample.video) as reader:
        indices = list(sample.frame_indices) or list(range(reader.num_frames))
        for s in range(0, len(indices), chunk):
            yield from reader.get_frames(indices[s:s + chunk])


def _read_image(path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise VideoError(f"cannot read frame {path}: {e}") from None


def _settings(name: str) -> dict:
    """The tracker's settings, so the evaluation cache tells apart runs of different settings."""
    from regionlm.objects.classical.track import BoxTrackerConfig, ClassicalTrackerConfig

    return {"classical": {"box": asdict(BoxTrackerConfig()), "mask": asdict(ClassicalTrackerConfig())},
            "csrt": {}}.get(name, {})
