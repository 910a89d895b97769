"""RegionWorld: a deterministic procedural video world with exact ground truth and region-level annotations."""

from .generate import TASK_FILES, generate_split, make_video, necessity_stats
from .spec import COLOURS, HOLDOUT_COMBOS, QUESTION_TYPES, SHAPES, SIZES, SPLITS, WorldConfig

__all__ = ["COLOURS", "HOLDOUT_COMBOS", "QUESTION_TYPES", "SHAPES", "SIZES", "SPLITS", "TASK_FILES", "WorldConfig",
           "generate_split", "make_video", "necessity_stats"]
