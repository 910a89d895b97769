"""mask_pool (VideoRefer's spatial-temporal object encoder).

1. Mask pooling: on every given frame, the region's mask (area-averaged to the feature grid) weights an average of
   the vision features -> one feature vector per given frame (a frame where the mask is empty gives zeros).
2. Temporal token merge: adjacent frame tokens that look alike carry little new information, so the most similar
   adjacent pair (cosine similarity) is merged into its size-weighted mean, repeatedly, until
   ``config.merge_tokens`` (u) tokens remain. Single-frame regions stay one token; ``temporal_merge=False`` keeps
   one token per given frame.
   With ``config.region_geometry`` each frame's pooled feature first gets a learned embedding of where the mask is
   and how it moves (common.region_geometry: centre, size, velocity), added before the merge; with
   ``config.region_silhouette`` one of the mask's shape inside its box (common.region_silhouette; Ferret samples
   the free-form region for the same reason). Pooled appearance carries position only as averaged position
   embeddings and loses a small object's outline on a coarse grid. Both are off by default. Added to a trained
   model for 1,500 more steps, neither was read (configs/geometry_finetune.yaml); the shipped model has both from
   step 0 and reads centre, size and outline but not velocity (benchmarks/geometry_probe.py, docs/RESULTS.md).
   With ``config.region_trajectory`` the region gets one more token after those: a small MLP of its whole path
   (common.region_trajectory: where it starts and ends, how it first moves and moves on average), so that
   motion is not one more direction mixed into appearance features (docs/RESULTS.md: added there, velocity was
   not read).
3. The encoder's own two-layer MLP maps the tokens to the LM's width; they replace the region's `<region>`
   placeholders (``config.tokens_per_region(n_given)`` of them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regionlm.model.connectors import Projector

from .base import RegionEncoder, RegionEncoding, register_region_encoder
from .common import (GEOMETRY_DIM, SILHOUETTE_SIZE, TRAJECTORY_DIM, check_resolution, empty_embeds, given_frames,
                     grid_coverage, masked_pool, region_geometry, region_silhouette, region_slots, region_trajectory)


def merge_adjacent(tokens: torch.Tensor, u: int, sizes: torch.Tensor | None = None):
    """Merge the most similar adjacent pair of ``tokens`` (n, C) until ``u`` remain (nothing to do if n <= u).

    Each token stands for ``sizes`` frames (default 1 each); a merge replaces a pair by the mean of its members
    weighted by their sizes, so a merged token is the plain mean of the frames it covers. The choice of pair is
    not differentiable, the means are. Returns (tokens (m, C), sizes (m,)) with m = min(n, u), in time order."""
    if u < 1:
        raise ValueError(f"merge_adjacent: u must be >= 1, got {u}")
    if sizes is None:
        sizes = torch.ones(tokens.shape[0], dtype=tokens.dtype, device=tokens.device)
    parts = list(tokens.unbind(0))
    weights = list(sizes.to(tokens.dtype).unbind(0))
    while len(parts) > u:
        with torch.no_grad():
            stacked = torch.stack(parts)
            similarity = F.cosine_similarity(stacked[:-1], stacked[1:], dim=-1)
            i = int(similarity.argmax())  # ties: the earliest pair
        total = weights[i] + weights[i + 1]
        parts[i:i + 2] = [(parts[i] * weights[i] + parts[i + 1] * weights[i + 1]) / total]
        weights[i:i + 2] = [total]
    return torch.stack(parts), torch.stack(weights)


@register_region_encoder("mask_pool")
class MaskPoolEncoder(RegionEncoder):
    def __init__(self, config, connector):
        super().__init__(config, connector)
        self.mlp = Projector(int(config.vision_config.hidden_size), int(config.text_config.hidden_size),
                             config.projector_hidden_act)
        if config.region_geometry:
            self.geometry = torch.nn.Linear(GEOMETRY_DIM, int(config.vision_config.hidden_size))
            # modeling._init_weights: large enough to be seen at once, against a trained tower's features spread
            # ~0.5 per channel (started at zero on a trained model, 1,500 steps moved its weights ~0.01)
            self.geometry.init_std = config.region_embedding_std
        if config.region_silhouette:
            self.silhouette = torch.nn.Linear(SILHOUETTE_SIZE ** 2, int(config.vision_config.hidden_size))
            # 36 inputs in [0, 1], not 7 near 0
            self.silhouette.init_std = config.region_embedding_std / SILHOUETTE_SIZE
        if config.region_trajectory:
            width = int(config.vision_config.hidden_size)
            self.trajectory = torch.nn.Sequential(torch.nn.Linear(TRAJECTORY_DIM, width), torch.nn.GELU(),
                                                  torch.nn.Linear(width, width))
            # inputs are a few tenths: pre-activations near unit size, outputs at the pooled features' scale
            self.trajectory[0].init_std = 1.0
            self.trajectory[2].init_std = width ** -0.5

    def frame_tokens(self, pooled: torch.Tensor, frames: list) -> torch.Tensor:
        """The pooled features of one region on its given frames -> its tokens before the MLP."""
        if not frames:  # a valid region with no given frame still owns tokens_per_region(0) = 1 placeholder
            return pooled.new_zeros(1, pooled.shape[-1])
        tokens = pooled[frames]
        if self.config.temporal_merge:
            tokens, _ = merge_adjacent(tokens, self.config.merge_tokens)
        return tokens

    def forward(self, features, regions, context):
        b, t, h, w, c = features.shape
        if regions.masks is None:
            return RegionEncoding(region_embeds=empty_embeds(b, context.tokens.shape[-1], context.tokens))
        check_resolution(regions, self.config.image_size)
        cover = grid_coverage(regions.given_masks().to(features.dtype), h, w)
        pooled, area = masked_pool(features, cover)  # (B, R, T, C), (B, R, T)
        seen = (area > 0)[..., None].to(pooled.dtype)  # embeddings only where seen: an empty frame stays zero
        if self.config.region_geometry or self.config.region_trajectory:
            geometry = region_geometry(regions.masks, regions.given).to(pooled.dtype)
        if self.config.region_geometry:
            pooled = pooled + self.geometry(geometry) * seen
        paths = self.trajectory(region_trajectory(geometry)) if self.config.region_trajectory else None  # (B, R, C)
        if self.config.region_silhouette:
            pooled = pooled + self.silhouette(region_silhouette(regions.masks, regions.given).to(pooled.dtype)) * seen
        per_sample = []
        for i, slots in enumerate(region_slots(regions)):
            tokens = [self.frame_tokens(pooled[i, r], given_frames(regions, i, r)) for r in slots]
            if paths is not None:  # the trajectory token follows the region's appearance tokens
                tokens = [torch.cat([tok, paths[i, r][None]]) for r, tok in zip(slots, tokens)]
            for r, tok in zip(slots, tokens):
                n_given = int(regions.given[i, r].sum())
                assert tok.shape[0] == self.config.tokens_per_region(n_given), "merge and config disagree"
            per_sample.append(torch.cat(tokens) if tokens else features.new_zeros(0, c))
        counts = [p.shape[0] for p in per_sample]
        projected = self.mlp(torch.cat(per_sample))
        return RegionEncoding(region_embeds=list(projected.split(counts)))
