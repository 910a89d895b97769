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
4. With ``config.region_marks``, Omni-RGPT's Token Marks as well (marks.py): the region's mark is added to the
   context tokens inside its given masks, and the mark itself, projected as the context is, is the region's last
   token, as token_mark's `<region>` (the guide head, ``config.guide_head``, learns to follow it through the
   clip). Pooled appearance is the same for two look-alikes; the marked context tokens carry where each one is,
   among the things around it. Off by default: in small models it did not help region questions, and with the
   guide head they read the marks' outline and place and stopped naming colour (docs/RESULTS.md).
5. With ``config.object_list``, VideoOrion's object tokens through this encoder: every object of the prompt's
   object list (ground truth in training, the object pipeline's tracks at inference) is pooled as a region given
   on every frame it is seen on, averaged over those frames and projected by the same MLP: one `<obj>` token
   each, in the space of the region tokens the LM already reads (video questions count objects by colour and
   shape, which the context tokens alone answered at chance).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regionlm.model.connectors import Projector

from .base import RegionEncoder, RegionEncoding, register_region_encoder
from .common import (GEOMETRY_DIM, SILHOUETTE_SIZE, TRAJECTORY_DIM, check_resolution, empty_embeds,
                     grid_coverage, listed_objects, masked_pool, present_mean, region_geometry, region_silhouette,
                     region_trajectory)
from .marks import guide_loss, mark_regions, new_marks


def merge_adjacent(tokens: torch.Tensor, u: int, sizes: torch.Tensor | None = None):
    """Merge the most similar adjacent pair of ``tokens`` (n, C) until ``u`` remain (nothing to do if n <= u).

    Each token stands for ``sizes`` frames (default 1 each); a merge replaces a pair by the mean of its members
    weighted by their sizes, so a merged token is the plain mean of the frames it covers. The choice of pair is
    not differentiable, the means are. Returns (tokens (m, C), sizes (m,)) with m = min(n, u), in time order."""
    n = tokens.shape[0]
    counts = torch.tensor([n], device=tokens.device)
    merged, weights = merge_adjacent_batched(tokens[None], counts, u, None if sizes is None else sizes[None])
    m = min(n, u)
    return merged[0, :m], weights[0, :m]


def merge_adjacent_batched(tokens: torch.Tensor, counts: torch.Tensor, u: int, sizes: torch.Tensor | None = None):
    """merge_adjacent for N sequences at once, with no host round trip (the GPU is never waited on): ``tokens``
    (N, T, C) holds sequence i in its first ``counts[i]`` rows. Returns (tokens, sizes), each sequence in its
    first min(counts[i], u) rows and zeros after. Every step merges, in each sequence still longer than u, its
    most similar adjacent pair (ties: the earliest), exactly as merging one sequence at a time."""
    if u < 1:
        raise ValueError(f"merge_adjacent: u must be >= 1, got {u}")
    n, t, _ = tokens.shape
    frame = torch.arange(t, device=tokens.device)
    inside = frame < counts[:, None]  # (N, T)
    if sizes is None:
        sizes = torch.ones(n, t, dtype=tokens.dtype, device=tokens.device)
    weights = sizes.to(tokens.dtype) * inside
    tokens = tokens * inside[..., None]
    length = counts.clone()
    pad = tokens.new_zeros(n, 1, tokens.shape[-1])
    for _ in range(max(t - u, 0)):
        with torch.no_grad():
            similarity = F.cosine_similarity(tokens[:, :-1], tokens[:, 1:], dim=-1)  # (N, T - 1)
            similarity = similarity.masked_fill(frame[:-1] >= (length - 1)[:, None], float("-inf"))
            i = similarity.argmax(1)[:, None]  # (N, 1): the pair (i, i + 1)
            active = (length > u)[:, None]
        w_i, w_j = weights.gather(1, i), weights.gather(1, i + 1)
        x_i = tokens.gather(1, i[..., None].expand(-1, -1, tokens.shape[-1]))[:, 0]
        x_j = tokens.gather(1, (i + 1)[..., None].expand(-1, -1, tokens.shape[-1]))[:, 0]
        total = w_i + w_j
        mean = (x_i * w_i + x_j * w_j) / total
        # rows before the pair stay, the pair becomes its mean, the rows after it move up by one
        before, at = frame[:-1][None] < i, frame[:-1][None] == i
        shifted = torch.where(before[..., None], tokens[:, :-1],
                              torch.where(at[..., None], mean[:, None], tokens[:, 1:]))
        shifted_w = torch.where(before, weights[:, :-1], torch.where(at, total, weights[:, 1:]))
        tokens = torch.where(active[..., None], torch.cat([shifted, pad], 1), tokens)
        weights = torch.where(active, torch.cat([shifted_w, weights.new_zeros(n, 1)], 1), weights)
        length = length - active[:, 0].long()
    return tokens, weights


@register_region_encoder("mask_pool")
class MaskPoolEncoder(RegionEncoder):
    def __init__(self, config, connector):
        super().__init__(config, connector)
        self._merge = merge_adjacent_batched  # compile_parts replaces it with its compiled twin
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
        self.marks, self.guide_head = new_marks(config) if config.region_marks else (None, None)

    def forward(self, features, regions, context):
        check_resolution(regions, self.config.image_size)
        objects = self._object_tokens(features, regions) if self.config.object_list else None
        if regions.masks is None:
            return RegionEncoding(region_embeds=empty_embeds(features.shape[0], context.tokens.shape[-1],
                                                             context.tokens), object_embeds=objects)
        pooled, paths = self._pool(features, regions.masks, regions.given)
        if not self.config.region_marks:
            return RegionEncoding(region_embeds=self._region_tokens(pooled, paths, regions), object_embeds=objects)
        marks, residual, aux = mark_regions(self, features, regions, context)
        return RegionEncoding(residual=residual, region_embeds=self._region_tokens(pooled, paths, regions, marks),
                              object_embeds=objects, aux=aux)

    def _object_tokens(self, features, regions) -> list:
        """One token per listed object (config.object_list): its pooled features (with their embeddings) on the
        frames it is seen on, averaged, through the regions' MLP; per sample, its valid objects in order."""
        b = features.shape[0]
        if regions.object_masks is None or regions.object_masks.shape[1] == 0:
            return empty_embeds(b, self.mlp.fc2.out_features, features)
        seen = regions.object_masks.flatten(-2).any(-1)  # (B, O, T)
        pooled, _ = self._pool(features, regions.object_masks, seen)
        return listed_objects(self.mlp(present_mean(pooled, seen)), regions, self.config.max_objects)

    def aux_loss(self, encoding, context_hidden):
        return guide_loss(self.guide_head, encoding, context_hidden)

    def _pool(self, features, masks, given):
        """Each region's pooled feature per frame (B, R, T, C), with its geometry and silhouette embeddings, and
        its trajectory token (B, R, C) or None. Tensors in, tensors out, no host reads: compile_parts compiles
        it as one graph."""
        h, w = features.shape[2:4]
        cover = grid_coverage((masks * given[..., None, None].to(masks.dtype)).to(features.dtype), h, w)
        pooled, area = masked_pool(features, cover)  # (B, R, T, C), (B, R, T)
        seen = (area > 0)[..., None].to(pooled.dtype)  # embeddings only where seen: an empty frame stays zero
        if self.config.region_geometry or self.config.region_trajectory:
            geometry = region_geometry(masks, given).to(pooled.dtype)
        if self.config.region_geometry:
            pooled = pooled + self.geometry(geometry) * seen
        paths = self.trajectory(region_trajectory(geometry)) if self.config.region_trajectory else None
        if self.config.region_silhouette:
            pooled = pooled + self.silhouette(region_silhouette(masks, given).to(pooled.dtype)) * seen
        return pooled, paths

    def compile_parts(self) -> int:
        """torch.compile the encoder's tensor work (trainer.compile_layers): the pooling with its embeddings, and
        the temporal merge (its steps unrolled into one graph); the bookkeeping between them stays on the host.
        Any number of regions without compiling again (dynamic=True). Returns the number of parts compiled."""
        self._pool = torch.compile(self._pool, dynamic=True)
        self._merge = torch.compile(merge_adjacent_batched, dynamic=True)
        return 2

    def _region_tokens(self, pooled, paths, regions, marks=None) -> list:
        """Each valid region's tokens, all regions at once: its pooled features on its given frames in time order
        (merged to merge_tokens), one zero placeholder if it is given on none, then its trajectory token;
        projected; then its projected mark (``marks`` (B, R, D), if given); split per sample in placeholder
        order. The bookkeeping is planned on the host."""
        given, valid = regions.on_host()
        b, _, t, c = pooled.shape
        slots = torch.nonzero(valid, as_tuple=False)  # (N, 2): sample, slot; in placeholder order
        if len(slots) == 0:
            return empty_embeds(b, self.mlp.fc2.out_features, pooled)
        shown = given[slots[:, 0], slots[:, 1]]  # (N, T)
        counts = shown.sum(-1)
        order = torch.argsort((~shown).to(torch.int8), dim=-1, stable=True)  # given frames first, in time order
        trajectory, marked = paths is not None, marks is not None
        extra = int(trajectory) + int(marked)  # tokens a region has besides its frames'
        kept = [self.config.tokens_per_region(k) - extra for k in counts.tolist()]
        width = t + int(trajectory)  # token rows per region below: its frames, then its trajectory token
        tail = [t] if trajectory else []
        rows = [k * width + j for k, m in enumerate(kept) for j in [*range(m), *tail]]
        plan = torch.cat([slots, order, counts[:, None]], 1).to(pooled.device, non_blocking=True)
        rows = torch.tensor(rows).to(pooled.device, non_blocking=True)
        sample, slot, order, n_given = plan[:, 0], plan[:, 1], plan[:, 2:2 + t], plan[:, -1]
        tokens = pooled[sample, slot].gather(1, order[..., None].expand(-1, -1, c))
        # rows past a region's given frames are zero (so is the placeholder of a region given on none)
        tokens = tokens * (torch.arange(t, device=pooled.device) < n_given[:, None])[..., None]
        if self.config.temporal_merge:
            tokens, _ = self._merge(tokens, n_given, self.config.merge_tokens)
        if trajectory:
            tokens = torch.cat([tokens, paths[sample, slot][:, None]], 1)
        projected = self.mlp(tokens.flatten(0, 1)[rows])
        if marked:  # each region's mark after its rows: index into [its rows..., the marks...]
            n_rows, at, order_rows = len(rows), 0, []
            for k, m in enumerate(kept):
                step = m + len(tail)
                order_rows += [*range(at, at + step), n_rows + k]
                at += step
            order_rows = torch.tensor(order_rows).to(pooled.device, non_blocking=True)
            projected = torch.cat([projected, marks[sample, slot].to(projected.dtype)])[order_rows]
        per_sample = [0] * b
        for (i, _), m in zip(slots.tolist(), kept):
            per_sample[i] += m + extra
        return list(projected.split(per_sample))
