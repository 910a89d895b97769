"""The ``hf`` backend of the object pipeline: real checkpoints from a local folder, through transformers.

Registered parts (``regionlm.objects.base.create(kind, name, checkpoint=DIR, device="cpu")``):

- detector ``hf-owlv2`` (OWLv2), ``hf-grounding-dino`` (Grounding DINO), ``hf`` (either, picked by the folder's
  ``config.json`` ``model_type``);
- segmenter ``hf-sam``: SAM (``sam``), SAM 2 (``sam2``, or the image part of a ``sam2_video`` checkpoint) or the
  SAM 3 tracker (``sam3_tracker`` / ``sam3_tracker_video``);
- tracker ``hf``: SAM 2 video propagation (``sam2_video``; SAM 3's ``sam3_tracker_video`` has the same API),
  streaming, with old frames and memories evicted so long videos run in bounded memory.

Nothing here downloads: a checkpoint is a folder saved by ``save_pretrained`` (see docs/objects_hf.md). transformers
and torch are imported when a part is built, so importing this package (which registers the names) stays cheap.
"""

from regionlm.objects.hf import detectors, segmenter, tracker  # noqa: F401  (importing registers the parts)
