"""RegionLMConfig: every choice of the model in one place (a transformers config, saved as config.json).

The parts are named, not built here: ``vision_config`` is any HF vision model config (SigLIP by default),
``text_config`` any HF causal LM config (Qwen2 by default), ``connector`` and ``region_encoder`` are registry names
(``regionlm.model.connectors`` / ``regionlm.model.region``). The token counts the processor needs to expand
``<video>`` and ``<region>`` placeholders are computed here from the config alone, so processor and model agree.
"""

from __future__ import annotations

import math

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

CONNECTORS = ("pool", "stc", "t_selector")
REGION_ENCODERS = ("token_mark", "mask_pool", "object_tokens", "roi_box", "text_coords", "visual_marks")
OBJECT_PROJECTORS = ("mlp", "linear", "avg", "attention", "lstm")

# The tiny default parts (RegionWorld, 64x64 frames); real checkpoints bring their own configs.
DEFAULT_VISION = {"image_size": 64, "patch_size": 8, "hidden_size": 128, "intermediate_size": 512,
                  "num_hidden_layers": 4, "num_attention_heads": 4}
DEFAULT_TEXT = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
                "num_key_value_heads": 2, "vocab_size": 2048, "max_position_embeddings": 2048,
                "tie_word_embeddings": True}


class RegionLMConfig(PreTrainedConfig):
    model_type = "regionlm"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="siglip_vision_model",
                                       init_kwargs=DEFAULT_VISION),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2", init_kwargs=DEFAULT_TEXT),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    vision_feature_layer: int = -1  # hidden state of the vision tower used as features
    image_mean: tuple = (0.5, 0.5, 0.5)  # the processor's normalisation (SigLIP's); visual marks draw in it
    image_std: tuple = (0.5, 0.5, 0.5)

    # context connector (video tokens)
    connector: str = "pool"
    pool_stride: int = 2  # pool / stc: spatial downsampling of the patch grid
    stc_temporal_stride: int = 2  # stc: frames merged per token
    t_selector_keep: int = 16  # t_selector: tokens kept per frame (top-k by the gate)
    projector_hidden_act: str = "gelu"
    context_positions: bool = False  # add an embedding of each context token's place in the frame (connectors.py)
    context_frames: bool = False  # add an embedding of the time in the clip each context token stands for

    # region encoder
    region_encoder: str = "token_mark"
    max_regions: int = 8  # <region> placeholders per sample
    num_marks: int = 16  # token_mark (and mask_pool's region_marks): N_F learnable marks (>= max_regions)
    guide_head: bool = True  # token_mark, mask_pool with region_marks: Temporal Region Guide Head (training only)
    guide_alpha: float = 0.5  # loss = L_LM + alpha * L_aux
    mark_init_std: float = 1.0  # token_mark, region_marks: the marks' initial scale (vision features are ~1)
    temporal_merge: bool = True  # mask_pool: merge similar adjacent frame tokens
    merge_tokens: int = 4  # mask_pool: u, tokens per region after the merge
    region_geometry: bool = False  # mask_pool: add an embedding of the mask's centre, size and velocity per frame
    region_silhouette: bool = False  # mask_pool: add an embedding of the mask's shape inside its box per frame
    region_embedding_std: float = 0.2  # mask_pool: initial weight scale of the geometry / silhouette embeddings;
    #   it decides what a model trained from scratch reads (docs/RESULTS.md, "Why the model does not say
    #   where its region goes")
    region_trajectory: bool = False  # mask_pool: one more token per region, its trajectory (where it starts and
    #   ends, how it first moves and moves on average), apart from the appearance tokens
    region_marks: bool = False  # mask_pool: Token Marks as well (marks.py): each region's mark is added to the
    #   context tokens inside its given masks and is one more token of the region, so the LM can find where it is
    object_list: bool = False  # mask_pool: every prompt lists the video's objects (ground truth in training, the
    #   object pipeline's tracks at inference), one `<obj>` token each: its pooled tokens averaged over the frames
    #   it is seen on and projected by the regions' own MLP (VideoOrion's object tokens, in the region tokens' space)
    object_projector: str = "mlp"  # object_tokens: the paper's ablation choices
    max_objects: int = 64  # object_tokens: at most this many <obj> tokens
    roi_grid: int = 2  # roi_box: grid x grid box cells + 1 whole-box token per region

    # training aid for a vision tower trained from scratch: a linear head predicts each patch's pixels (2x2
    # downsampled) from its features, loss += alpha x MSE. Without it the tower's features collapse to one vector
    # early on (the LM ignores the still-random video tokens, so nothing asks them to carry information).
    pixel_recon_alpha: float = 0.0  # 0: off (no head is built)

    # special tokens (ids in the tokenizer; set by the processor when it adds them)
    video_token_id: int = 1
    region_token_id: int = 2
    object_token_id: int = 3
    num_frames: int = 16  # frames sampled per video by default

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.connector not in CONNECTORS:
            raise ValueError(f"connector must be one of {CONNECTORS}, got {self.connector!r}")
        if self.region_encoder not in REGION_ENCODERS:
            raise ValueError(f"region_encoder must be one of {REGION_ENCODERS}, got {self.region_encoder!r}")
        if self.object_projector not in OBJECT_PROJECTORS:
            raise ValueError(f"object_projector must be one of {OBJECT_PROJECTORS}, got {self.object_projector!r}")
        for option in ("region_geometry", "region_silhouette", "region_trajectory", "region_marks", "object_list"):
            if getattr(self, option) and self.region_encoder != "mask_pool":
                raise ValueError(f"{option} is a mask_pool option; region_encoder is {self.region_encoder!r}")
        marked = self.region_encoder == "token_mark" or self.region_marks
        if marked and self.num_marks < self.max_regions:
            raise ValueError(f"num_marks ({self.num_marks}) must be >= max_regions ({self.max_regions})")

    # ------------------------------------------------------------ sizes derived from the config

    @property
    def image_size(self) -> int:
        return int(self.vision_config.image_size)

    @property
    def grid_size(self) -> int:
        """Patches per side of the vision tower's feature map."""
        return self.image_size // int(self.vision_config.patch_size)

    def tokens_per_frame(self) -> float:
        g = self.grid_size
        if self.connector == "pool":
            return math.ceil(g / self.pool_stride) ** 2
        if self.connector == "stc":
            return (g // self.pool_stride) ** 2 / self.stc_temporal_stride
        return min(self.t_selector_keep, g * g)

    def num_context_tokens(self, num_frames: int) -> int:
        """Tokens one `<video>` placeholder expands to for a clip of ``num_frames`` frames."""
        g = self.grid_size
        if self.connector == "pool":
            return num_frames * math.ceil(g / self.pool_stride) ** 2
        if self.connector == "stc":
            return math.ceil(num_frames / self.stc_temporal_stride) * (g // self.pool_stride) ** 2
        return num_frames * min(self.t_selector_keep, g * g)

    def tokens_per_region(self, num_given_frames: int) -> int:
        """Embedding tokens one `<region>` expands to (0: the region is written as text instead)."""
        enc = self.region_encoder
        if enc in ("text_coords", "visual_marks"):
            return 0
        if enc == "mask_pool":
            frames = num_given_frames if not self.temporal_merge else min(self.merge_tokens, num_given_frames)
            return max(1, frames) + int(self.region_trajectory) + int(self.region_marks)
        if enc == "roi_box":
            return self.roi_grid * self.roi_grid + 1
        return 1  # token_mark, object_tokens

    @property
    def uses_objects(self) -> bool:
        """Whether the prompt carries the video's object list (`<obj>` tokens)."""
        return self.region_encoder == "object_tokens" or self.object_list
