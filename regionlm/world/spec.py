"""The vocabulary and settings of RegionWorld, every default in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data.videorefer import QUESTION_TYPES  # the five VideoRefer-Bench-Q types

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross", "ring", "hexagon")
# Shapes that look the same at every rotation: never given a spin (it would be invisible).
ROUND_SHAPES = frozenset({"circle", "ring"})

COLOURS = {  # RGB, saturated, far from the dark backgrounds and from each other
    "red": (220, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 95, 235),
    "yellow": (235, 215, 40),
    "purple": (150, 55, 205),
    "orange": (245, 135, 25),
    "cyan": (40, 205, 215),
    "white": (238, 238, 238),
}
SIZES = {"small": 0.08, "large": 0.15}  # shape radius as a fraction of the frame side

# Compositional hold-out: colour-shape pairs that train/val/test never contain and every holdout video does.
HOLDOUT_COMBOS = frozenset({("purple", "star"), ("green", "triangle"), ("orange", "ring"), ("cyan", "hexagon")})

SPLITS = ("train", "val", "test", "holdout")
# Mixed into every random stream so that the same --seed gives unrelated videos in different splits.
SPLIT_STREAM = {"train": 11, "val": 23, "test": 37, "holdout": 53}

WALLS = ("left", "right", "top", "bottom")


@dataclass
class WorldConfig:
    """How videos are drawn. Probabilities are per object unless said otherwise."""

    frames: int = 16
    size: int = 64  # frames are size x size
    min_objects: int = 2
    max_objects: int = 6
    fps: int = 8
    future_frames: int = 8  # simulated past the end, never rendered: the truth for Future Predictions
    p_static: float = 0.25
    speed_range: tuple[float, float] = (0.9, 2.4)  # pixels per frame at size 64; scales with size
    p_speed_change: float = 0.3
    p_spin: float = 0.35
    spin_range: tuple[float, float] = (6.0, 15.0)  # degrees per frame
    p_enter: float = 0.15
    p_leave: float = 0.15
    p_upper_layer: float = 0.3  # objects on the upper layer pass over (and hide) the others
    p_colour_change: float = 0.15
    p_pass_behind: float = 0.5  # per video: set up a small object to pass fully behind a large one
    p_textured_background: float = 0.5
    p_same_shape_lookalike: float = 0.5  # the forced look-alike pair also shares its shape
    noise_std: float = 4.0  # pixel noise on textured videos
    questions_per_type: int = 2  # region questions of each type per video (when available)
    holdout_combos: frozenset = field(default_factory=lambda: HOLDOUT_COMBOS)

    def validate(self) -> None:
        from ..errors import RegionLMError

        if not 2 <= self.frames <= 512:
            raise RegionLMError(f"--frames must be in 2..512, got {self.frames}")
        if not 32 <= self.size <= 256:
            raise RegionLMError(f"--size must be in 32..256, got {self.size}")
        if not 2 <= self.min_objects <= self.max_objects <= 6:
            raise RegionLMError(
                f"--objects must be MIN-MAX with 2 <= MIN <= MAX <= 6, got {self.min_objects}-{self.max_objects}"
            )
