"""``objects.json`` / ``tracks.json``: writing, reading with validation, and rendering tracks onto the video.

Schema (issue 5)::

    {"video": str, "height": H, "width": W, "num_frames": N,
     "objects": [{"id": int, "label": str, "score": float,
                  "frames": {"<frame index>": {"segmentation": COCO RLE, "box": [x1, y1, x2, y2]}, ...}}, ...]}

Frame keys are indices of the input video, only frames where the object is visible (non-empty mask), in
increasing order; boxes are xyxy pixels with x2/y2 exclusive (as :func:`regionlm.regions.mask_to_box`).

An object known by boxes only (the ``model`` backend of ``regionlm track`` reads boxes off the model's text) has
no ``segmentation`` on any of its frames, only ``"box"`` (numbers, not necessarily integers); in memory its
``masks`` is a :class:`BoxTrack`. An object has a segmentation on every frame or on none.

Masks are held as RLE (:class:`RLEMasks`), so a result of a long video stays small in memory; a mask is decoded
only when it is read.
"""

from __future__ import annotations

import math
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from regionlm.data.io import atomic_write_json, read_text
from regionlm.errors import DataFormatError, RegionError
from regionlm.objects.base import ObjectsResult, ObjectTrack
from regionlm.regions import mask_to_box, mask_to_rle, rle_to_mask


class RLEMasks(MutableMapping):
    """frame index -> bool mask, stored as COCO RLE plus its box. Setting an empty mask deletes the frame
    (an object's frames are the frames where it is visible)."""

    def __init__(self, items=None):
        self._rle: dict[int, dict] = {}
        self._box: dict[int, list[int]] = {}
        for k, v in dict(items or {}).items():
            self[k] = v

    def __getitem__(self, frame: int) -> np.ndarray:
        return rle_to_mask(self._rle[int(frame)])

    def __setitem__(self, frame: int, mask: np.ndarray) -> None:
        box = mask_to_box(mask)
        frame = int(frame)
        if box is None:
            self._rle.pop(frame, None)
            self._box.pop(frame, None)
            return
        self._rle[frame] = mask_to_rle(mask)
        self._box[frame] = list(box)

    def set_rle(self, frame: int, rle: dict, box) -> None:
        """Store an already encoded mask (reading a file: nothing is decoded)."""
        self._rle[int(frame)] = rle
        self._box[int(frame)] = [int(v) for v in box]

    def rle(self, frame: int) -> dict:
        return self._rle[int(frame)]

    def box(self, frame: int) -> list[int]:
        return self._box[int(frame)]

    def __delitem__(self, frame: int) -> None:
        del self._rle[int(frame)]
        self._box.pop(int(frame), None)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._rle))

    def __len__(self) -> int:
        return len(self._rle)

    def __repr__(self) -> str:
        return f"RLEMasks({len(self)} frames)"


class BoxTrack(MutableMapping):
    """frame index -> xyxy pixel box, for a track known by boxes only (no masks). It stands in the ``masks``
    field of an ObjectTrack: writing, reading and rendering know it; ``box(f)`` reads like RLEMasks.box."""

    def __init__(self, items=None):
        self._box: dict[int, list[float]] = {}
        for k, v in dict(items or {}).items():
            self[k] = v

    def __getitem__(self, frame: int) -> list[float]:
        return self._box[int(frame)]

    def __setitem__(self, frame: int, box) -> None:
        if box is None:  # like an empty mask: the object is not on this frame
            self._box.pop(int(frame), None)
            return
        self._box[int(frame)] = [float(v) for v in box]

    def box(self, frame: int) -> list[float]:
        return self._box[int(frame)]

    def __delitem__(self, frame: int) -> None:
        del self._box[int(frame)]

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._box))

    def __len__(self) -> int:
        return len(self._box)

    def __repr__(self) -> str:
        return f"BoxTrack({len(self)} frames)"


def _json_number(v: float):
    v = round(float(v), 2)
    return int(v) if v.is_integer() else v


# ------------------------------------------------------------------ writing


def objects_to_json(result: ObjectsResult) -> dict:
    """The ``objects.json`` document of a result (frames sorted, empty masks left out)."""
    objects = []
    for obj in result.objects:
        frames = {}
        masks = obj.masks
        for f in sorted(masks):
            if isinstance(masks, BoxTrack):
                frames[str(int(f))] = {"box": [_json_number(v) for v in masks.box(f)]}
                continue
            if isinstance(masks, RLEMasks):
                rle, box = masks.rle(f), masks.box(f)
            else:
                m = np.asarray(masks[f])
                box = mask_to_box(m)
                if box is None:
                    continue
                rle = mask_to_rle(m)
            frames[str(int(f))] = {"segmentation": rle, "box": [int(v) for v in box]}
        score = float(obj.score)
        objects.append({"id": int(obj.id), "label": str(obj.label),
                        "score": round(score, 6) if math.isfinite(score) else 0.0, "frames": frames})
    return {"video": str(result.video), "height": int(result.height), "width": int(result.width),
            "num_frames": int(result.num_frames), "objects": objects}


def write_objects_json(path: str | os.PathLike, result: ObjectsResult) -> Path:
    """Write ``objects.json`` (or ``tracks.json``) atomically."""
    return atomic_write_json(path, objects_to_json(result))


# ------------------------------------------------------------------ reading


def read_objects_json(path: str | os.PathLike) -> ObjectsResult:
    """Read and validate an ``objects.json``; masks stay RLE until used. Any deviation from the schema raises
    :class:`DataFormatError` naming the file, the object and the field."""
    import json

    path = Path(path)
    text = read_text(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, None, None, f"invalid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
                              ) from None
    return objects_from_json(doc, path)


def objects_from_json(doc, path="objects.json") -> ObjectsResult:
    def fail(record, field, reason):
        raise DataFormatError(path, record, field, reason)

    if not isinstance(doc, dict):
        fail(None, None, f"expected a JSON object at the top, got {type(doc).__name__}")
    for key in ("video", "height", "width", "num_frames", "objects"):
        if key not in doc:
            fail(None, key, "missing")
    if not isinstance(doc["video"], str):
        fail(None, "video", f"must be a string, got {type(doc['video']).__name__}")
    for key in ("height", "width", "num_frames"):
        if not _is_int(doc[key]) or doc[key] < (0 if key == "num_frames" else 1):
            fail(None, key, f"must be a positive integer, got {doc[key]!r:.40}")
    H, W, N = int(doc["height"]), int(doc["width"]), int(doc["num_frames"])
    if not isinstance(doc["objects"], list):
        fail(None, "objects", f"must be a list, got {type(doc['objects']).__name__}")
    objects, seen = [], set()
    for k, obj in enumerate(doc["objects"]):
        rec = f"objects[{k}]"
        if not isinstance(obj, dict):
            fail(rec, None, f"must be an object, got {type(obj).__name__}")
        for key in ("id", "label", "score", "frames"):
            if key not in obj:
                fail(rec, key, "missing")
        if not _is_int(obj["id"]):
            fail(rec, "id", f"must be an integer, got {obj['id']!r:.40}")
        rec = f"object {obj['id']}"
        if obj["id"] in seen:
            fail(rec, "id", "repeated (ids must be unique)")
        seen.add(obj["id"])
        if not isinstance(obj["label"], str):
            fail(rec, "label", f"must be a string, got {type(obj['label']).__name__}")
        if not _is_number(obj["score"]) or not math.isfinite(obj["score"]):
            fail(rec, "score", f"must be a finite number, got {obj['score']!r:.40}")
        if not isinstance(obj["frames"], dict):
            fail(rec, "frames", f"must be an object of frame index -> mask, got {type(obj['frames']).__name__}")
        entries = obj["frames"].values()
        # Boxes only (no segmentation on any frame) is a box track; otherwise every frame needs its mask.
        box_only = bool(entries) and all(isinstance(e, dict) and "segmentation" not in e for e in entries)
        masks = BoxTrack() if box_only else RLEMasks()
        for key, entry in obj["frames"].items():
            field = f"frames.{key}"
            if not (isinstance(key, str) and key.isdigit()) or int(key) >= N:
                fail(rec, "frames", f"frame key {key!r} is not a frame index 0..{N - 1}")
            if not isinstance(entry, dict):
                fail(rec, field, f"must be an object with segmentation and box, got {type(entry).__name__}")
            for sub in ("box",) if box_only else ("segmentation", "box"):
                if sub not in entry:
                    fail(rec, f"{field}.{sub}", "missing" if sub == "box" else
                         "missing (other frames of this object have one: give it on every frame or on none)")
            box = entry["box"]
            if (not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) and math.isfinite(v)
                                                                      for v in box)):
                fail(rec, f"{field}.box", f"must be [x1, y1, x2, y2] (4 numbers), got {box!r:.60}")
            x1, y1, x2, y2 = box
            if not (0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H):
                fail(rec, f"{field}.box", f"{box} is not a box inside the {W}x{H} frame (x1 < x2, y1 < y2)")
            if box_only:
                masks[int(key)] = box
                continue
            seg = entry["segmentation"]
            try:
                mask = rle_to_mask(seg)
            except RegionError as err:
                fail(rec, f"{field}.segmentation", str(err))
            if mask.shape != (H, W):
                fail(rec, f"{field}.segmentation", f"RLE size {mask.shape[0]}x{mask.shape[1]} (HxW) differs from "
                                                   f"the video's {H}x{W}")
            if not mask.any():
                fail(rec, f"{field}.segmentation", "empty mask (frames are listed only where the object is "
                                                   "visible)")
            masks.set_rle(int(key), seg if isinstance(seg.get("counts"), str) else mask_to_rle(mask), box)
        objects.append(ObjectTrack(id=int(obj["id"]), label=obj["label"], score=float(obj["score"]), masks=masks))
    return ObjectsResult(video=doc["video"], height=H, width=W, num_frames=N, objects=objects)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ------------------------------------------------------------------ rendering

_PALETTE = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                     (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
                     (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195)], np.float32)


def draw_objects(frame: np.ndarray, index: int, objects: list[ObjectTrack], alpha: float = 0.5) -> np.ndarray:
    """``frame`` with each object's mask tinted in its colour, its outline, and ``id label`` at its box; an
    object known by boxes only (:class:`BoxTrack`) gets its box drawn instead."""
    import cv2

    out = frame.astype(np.float32)
    notes = []
    for obj in objects:
        if index not in obj.masks:
            continue
        colour = _PALETTE[(int(obj.id) - 1) % len(_PALETTE)]
        if isinstance(obj.masks, BoxTrack):
            notes.append((None, obj.masks.box(index), colour, obj))
            continue
        m = np.asarray(obj.masks[index], bool)
        box = mask_to_box(m)
        if box is None:  # a plain dict may hold an empty mask for a frame where the object is lost
            continue
        out[m] = (1 - alpha) * out[m] + alpha * colour
        notes.append((m, box, colour, obj))
    out = np.clip(out, 0, 255).astype(np.uint8)
    scale = max(0.3, min(out.shape[:2]) / 600)
    thick = max(1, int(2 * scale))
    for m, box, colour, obj in notes:
        if m is None:
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            cv2.rectangle(out, (x1, y1), (max(x2 - 1, x1), max(y2 - 1, y1)), colour.tolist(), thick)
        else:
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, colour.tolist(), thick)
        x1, y1 = int(round(box[0])), int(round(box[1]))
        cv2.putText(out, f"{obj.id} {obj.label}", (int(x1), max(int(y1) - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, colour.tolist(), max(1, int(scale * 2)), cv2.LINE_AA)
    return out


def render_objects(video, result: ObjectsResult, out_path, fps: Optional[float] = None, chunk: int = 32,
                   progress: bool = False) -> Path:
    """Write the video with the result's masks (or boxes) drawn on it, streaming (frames are read in chunks, never
    all at once); mp4 (h264) or any container :func:`regionlm.video.write_video` knows, written atomically."""
    import sys
    from fractions import Fraction

    import av

    from regionlm.errors import VideoError
    from regionlm.video import VideoReader, _atomic_write, _format_for

    out_path = Path(out_path)
    with VideoReader(video) as reader:
        rate = fps or reader.fps or 8
        H, W = reader.height, reader.width
        if (H, W) != (result.height, result.width):
            raise VideoError(f"video {video} is {W}x{H} but the tracks are for {result.width}x{result.height}")

        def write(tmp):
            fmt = _format_for(out_path)
            opts = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
            with av.open(tmp, mode="w", format=fmt, options=opts) as c:
                stream = c.add_stream("libx264", rate=Fraction(rate).limit_denominator(1001))
                stream.width, stream.height = W + W % 2, H + H % 2
                stream.pix_fmt = "yuv420p"
                starts = range(0, reader.num_frames, chunk)
                if progress:
                    from tqdm import tqdm

                    starts = tqdm(starts, desc="render", unit="chunk", file=sys.stderr)
                for s in starts:
                    idx = list(range(s, min(s + chunk, reader.num_frames)))
                    for i, img in zip(idx, reader.get_frames(idx)):
                        img = draw_objects(img, i, result.objects)
                        if H % 2 or W % 2:
                            img = np.pad(img, ((0, H % 2), (0, W % 2), (0, 0)), mode="edge")
                        c.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
                c.mux(stream.encode(None))

        try:
            _atomic_write(out_path, out_path.suffix, write)
        except (av.FFmpegError, ValueError, KeyError) as e:
            raise VideoError(f"cannot write video {out_path}: {e}") from None
    return out_path


__all__ = ["RLEMasks", "BoxTrack", "objects_to_json", "objects_from_json", "write_objects_json", "read_objects_json",
           "draw_objects", "render_objects"]
