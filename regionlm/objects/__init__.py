"""Detect - segment - track: every object of a video as tracks (VideoOrion's expert pipeline).

``base`` is the contract and the registry; ``classical`` (no weights) and ``hf`` (local checkpoints) are the
backends; ``keyframes`` the key-frame splitters; ``pipeline`` runs them; ``io`` reads and writes objects.json.
"""

from .base import (Detections, Detector, KeyframeSplitter, ObjectsResult, ObjectTrack, Segmenter,  # noqa: F401
                   Tracker, available, create, register)
from .systems import load_eval_tracker  # noqa: F401  (regionlm eval --tracker NAME)
