"""Streaming mask tracker from a local video checkpoint (``hf``): ``Sam2VideoModel`` (``sam2_video``) or
``Sam3TrackerVideoModel`` (``sam3_tracker_video``) with its inference session, fed one frame at a time.

Memory stays bounded on long videos. transformers' session keeps every frame it was given and every frame's
outputs; after each frame this tracker evicts what the model can no longer read:
- frames: only the current one (the image features of the current frame are cached by the session);
- tracked (non-conditioning) outputs older than the model's window, max(num_maskmem, max_object_pointers_in_encoder)
  frames, which is all that memory attention and object pointers look back;
- high-resolution masks (used once, for the memory encoder) and the per-frame mask inputs once consumed;
- conditioning outputs (frames where masks were given) beyond the ``max_cond_frames`` most recent per object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from regionlm.errors import RegionError, RegionLMError
from regionlm.objects.base import Tracker, register
from regionlm.objects.hf.checkpoint import (HALF, IMAGENET_MEAN, IMAGENET_STD, build_config, check_frame, check_masks,
                                            image_stats, load_model, model_type_of, torch_device)
from regionlm.objects.hf.images import Geometry, preprocess


@dataclass
class HFTrackerConfig:
    checkpoint: Optional[str] = None
    device: str = "cpu"
    mask_threshold: float = 0.0  # on the mask logits
    max_cond_frames: int = 4  # frames with given masks kept in memory per object (the most recent ones)
    offload_state: bool = False  # keep the memory bank in CPU memory (saves GPU memory with many objects)

    def __post_init__(self):
        if self.max_cond_frames < 1:
            raise RegionLMError(f"max_cond_frames must be >= 1, got {self.max_cond_frames}")


@dataclass(frozen=True)
class _Family:
    model_class: str
    session_class: str
    stats: tuple = (IMAGENET_MEAN, IMAGENET_STD)  # mean/std when the folder has no preprocessor config


# model_type -> the transformers classes (SAM 3's tracker keeps SAM 2's video API)
FAMILIES = {
    "sam2_video": _Family("Sam2VideoModel", "Sam2VideoInferenceSession"),
    "sam3_tracker_video": _Family("Sam3TrackerVideoModel", "Sam3TrackerVideoInferenceSession", stats=(HALF, HALF)),
}

# Per-object containers of the session, keyed by the model-side object index.
_PER_OBJECT = ("point_inputs_per_obj", "mask_inputs_per_obj", "output_dict_per_obj", "frames_tracked_per_obj")


@register("tracker", "hf")
class HFVideoTracker(Tracker):
    part = "hf tracker"

    def __init__(self, checkpoint=None, device="cpu", **options):
        import transformers

        self.config = build_config(HFTrackerConfig, self.part, checkpoint, device, options)
        self.path, self.model_type = model_type_of(checkpoint, self.part, FAMILIES)
        family = FAMILIES[self.model_type]
        self._session_class = getattr(transformers, family.session_class)
        self.device = torch_device(device)
        self.model = load_model(getattr(transformers, family.model_class), self.path, self.device)
        self.side = int(self.model.config.image_size)
        self.mean, self.std = image_stats(self.path, family.stats)
        self.window = max(int(self.model.config.num_maskmem), int(self.model.config.max_object_pointers_in_encoder))
        self.session = None
        self.frame_idx = -1
        self.size: Optional[tuple[int, int]] = None
        self._pixels = None  # the current frame, preprocessed
        self.masks: dict[int, np.ndarray] = {}  # the masks on the current frame

    # ------------------------------------------------------------------ the Tracker protocol

    def start(self, frame: np.ndarray, masks: dict[int, np.ndarray]) -> None:
        import torch

        frame = check_frame(frame)
        self.size = frame.shape[:2]
        masks = check_masks(masks, *self.size)
        state_device = "cpu" if self.config.offload_state else self.device
        self.session = self._session_class(
            video_height=self.size[0], video_width=self.size[1], inference_device=self.device,
            inference_state_device=state_device, video_storage_device=self.device, dtype=torch.float32)
        self.frame_idx = 0
        self._pixels = self._preprocess(frame)
        self.masks = {}
        if masks:
            self._prompt(masks)

    def step(self, frame: np.ndarray) -> dict[int, np.ndarray]:
        if self.session is None:
            raise RegionLMError(f"{self.part}: step() before start()")
        frame = self._same_size(frame)
        self.frame_idx += 1
        self._pixels = self._preprocess(frame)
        if not self.session.obj_ids:
            self.masks = {}
            return {}
        self.masks = self._run()
        return dict(self.masks)

    def add(self, frame: np.ndarray, masks: dict[int, np.ndarray]) -> None:
        if self.session is None:
            self.start(frame, masks)
            return
        self._same_size(frame)
        masks = check_masks(masks, *self.size)
        if masks:
            self._prompt(masks)

    def remove(self, ids: Sequence[int]) -> None:
        """Forget these ids: the session's per-object state is re-indexed without them."""
        if self.session is None:
            return
        drop = {int(i) for i in ids}
        s = self.session
        kept = [obj_id for obj_id in s.obj_ids if obj_id not in drop]
        old_index = {obj_id: s.obj_id_to_idx(obj_id) for obj_id in kept}
        for name in _PER_OBJECT:
            table = getattr(s, name)
            setattr(s, name, {new: table[old_index[obj_id]] for new, obj_id in enumerate(kept)})
        s._obj_id_to_idx.clear()
        s._obj_idx_to_id.clear()
        for new, obj_id in enumerate(kept):
            s._obj_id_to_idx[obj_id] = new
            s._obj_idx_to_id[new] = obj_id
        s.obj_ids = list(kept)
        s.obj_with_new_inputs = [i for i in s.obj_with_new_inputs if i not in drop]
        self.masks = {k: v for k, v in self.masks.items() if k not in drop}

    # ------------------------------------------------------------------ memory accounting (tests, benchmarks)

    def stored(self) -> dict[str, int]:
        """What the session holds now: frames, tracked outputs and conditioning outputs (summed over objects)."""
        if self.session is None:
            return {"frames": 0, "tracked_outputs": 0, "cond_outputs": 0, "objects": 0}
        outputs = self.session.output_dict_per_obj.values()
        return {"frames": len(self.session.processed_frames or {}),
                "tracked_outputs": sum(len(o["non_cond_frame_outputs"]) for o in outputs),
                "cond_outputs": sum(len(o["cond_frame_outputs"]) for o in outputs),
                "objects": len(self.session.obj_ids)}

    # ------------------------------------------------------------------ internals

    def _same_size(self, frame) -> np.ndarray:
        frame = check_frame(frame)
        if frame.shape[:2] != self.size:
            raise RegionError(f"{self.part}: frame {frame.shape[0]}x{frame.shape[1]} differs from the first frame "
                              f"{self.size[0]}x{self.size[1]} (HxW)")
        return frame

    def _preprocess(self, frame: np.ndarray):
        geometry = Geometry(frame.shape[0], frame.shape[1], self.side, square=True)
        return preprocess(frame, geometry, self.mean, self.std, self.device)[0]

    def _prompt(self, masks: dict[int, np.ndarray]) -> None:
        """Masks given on the current frame become conditioning inputs, for new ids and re-seeded ones alike."""
        import torch
        import torch.nn.functional as F

        s = self.session
        for obj_id, mask in masks.items():
            obj_idx = s.obj_id_to_idx(obj_id)
            # A frame the object was already tracked on would otherwise be stored as a tracked frame, forgotten
            # after the window; as a conditioning frame the given mask is remembered.
            s.frames_tracked_per_obj[obj_idx].pop(self.frame_idx, None)
            s.output_dict_per_obj[obj_idx]["non_cond_frame_outputs"].pop(self.frame_idx, None)
            s.output_dict_per_obj[obj_idx]["cond_frame_outputs"].pop(self.frame_idx, None)
            m = torch.from_numpy(mask.astype(np.float32))[None, None].to(self.device)
            m = F.interpolate(m, size=(self.side, self.side), mode="bilinear", align_corners=False, antialias=True)
            s.add_mask_inputs(obj_idx, self.frame_idx, (m >= 0.5).float())
            s.remove_point_inputs(obj_idx, self.frame_idx)
        s.obj_with_new_inputs = list(masks)
        self.masks = self._run()

    def _run(self) -> dict[int, np.ndarray]:
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            out = self.model(inference_session=self.session, frame_idx=self.frame_idx, frame=self._pixels)
            logits = F.interpolate(out.pred_masks.float(), size=self.size, mode="bilinear", align_corners=False)
            masks = (logits[:, 0] > self.config.mask_threshold).cpu().numpy()
        self._evict()
        return {int(obj_id): masks[i] for i, obj_id in enumerate(out.object_ids)}

    def _evict(self) -> None:
        s, now = self.session, self.frame_idx
        for idx in [i for i in s.processed_frames if i != now]:
            del s.processed_frames[idx]
        oldest = now - self.window
        for obj_idx, outputs in s.output_dict_per_obj.items():
            tracked = outputs["non_cond_frame_outputs"]
            for idx in [i for i in tracked if i < oldest]:
                del tracked[idx]
            for out in tracked.values():  # only memory features and pointers are read back from tracked frames
                out.pop("high_res_masks", None)
                out.pop("pred_masks", None)
            cond = outputs["cond_frame_outputs"]
            for idx in sorted(cond)[: max(0, len(cond) - self.config.max_cond_frames)]:
                del cond[idx]
            for out in cond.values():
                out.pop("high_res_masks", None)
            history = s.frames_tracked_per_obj[obj_idx]
            for idx in [i for i in history if i < oldest]:
                del history[idx]
            s.mask_inputs_per_obj[obj_idx].clear()
            s.point_inputs_per_obj[obj_idx].clear()
