"""token_mark (Omni-RGPT): learnable Token Marks tie a region in the video to its `<region>` token in the text.

* N_F marks r_1..r_N (vectors in vision-feature space). Region i of a sample is assigned a mark: a random draw
  without replacement from the N_F in training (so no mark becomes "the first region"), mark i at inference.
* Per frame, a spatial mark map from the GIVEN masks at grid resolution (area-averaged coverage m):
  S_hw = sum_i m_i,hw r_i / (eps + sum_i m_i,hw). It goes through the connector's reduction and projector
  (``project_residual``: exactly zero on tokens that no mask touches) and is added to the context tokens.
* The `<region>` placeholder is replaced by the projected mark itself (``connector.project(r_i)``): one token per
  region whatever the number of frames, so the text length never depends on T.
* Temporal Region Guide Head (training only, ``config.guide_head``): a linear classifier over the LM's last hidden
  states at the context-token positions, N_F + 1 classes (marks + background). Its targets come from the masks of
  ALL frames, so a region marked on the first frame only is still followed through the clip. Labels are soft:
  a token's label is the average over the cells it covers of each cell's split between the regions covering it
  (overlaps share in proportion to coverage) and background (what no region covers); they sum to 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from regionlm.errors import RegionError

from .base import RegionEncoder, RegionEncoding, register_region_encoder
from .common import check_resolution, empty_embeds, grid_coverage, region_slots

# Marks start at unit scale, the order of a vision transformer's hidden states, so regions are told apart from
# step 0 (embedding-style 0.02 marks would vanish next to the features they are added to).
MARK_INIT_STD = 1.0


@register_region_encoder("token_mark")
class TokenMarkEncoder(RegionEncoder):
    eps = 1e-6

    def __init__(self, config, connector):
        super().__init__(config, connector)
        vision_dim = int(config.vision_config.hidden_size)
        self.marks = nn.Parameter(torch.randn(config.num_marks, vision_dim) * MARK_INIT_STD)
        self.guide_head = (nn.Linear(int(config.text_config.hidden_size), config.num_marks + 1)
                           if config.guide_head else None)

    def assign_marks(self, batch: int, slots: int, device) -> torch.Tensor:
        """(B, R) mark index per region slot: random without replacement per sample in training, slot i -> mark i
        at inference."""
        n = self.config.num_marks
        if slots > n:
            raise RegionError(f"region_masks: {slots} region slots, but token_mark has only {n} marks "
                              f"(config.num_marks)")
        if self.training:
            return torch.stack([torch.randperm(n)[:slots] for _ in range(batch)]).to(device)
        return torch.arange(slots, device=device).expand(batch, slots)

    def forward(self, features, regions, context):
        b, t, h, w, c = features.shape
        if regions.masks is None:
            return RegionEncoding(region_embeds=empty_embeds(b, context.tokens.shape[-1], context.tokens))
        check_resolution(regions, self.config.image_size)
        valid = regions.valid.to(features.dtype)[:, :, None, None, None]  # (B, R, 1, 1, 1)
        assign = self.assign_marks(b, regions.masks.shape[1], features.device)
        marks = self.marks[assign].to(features.dtype)  # (B, R, C)

        cover = grid_coverage(regions.given_masks().to(features.dtype), h, w) * valid  # (B, R, T, h, w)
        weighted = torch.einsum("brthw,brc->bthwc", cover, marks)
        mark_map = weighted / (self.eps + cover.sum(1))[..., None]  # (B, T, h, w, C), zero outside every mask
        residual = self.connector.project_residual(mark_map, context)

        projected = self.connector.project(marks)  # (B, R, D)
        embeds = [projected[i, slots] for i, slots in enumerate(region_slots(regions))]

        aux = {}
        if self.training and self.guide_head is not None:
            aux["guide_targets"] = self.guide_targets(regions, assign, (h, w), context).detach()
        return RegionEncoding(residual=residual, region_embeds=embeds, aux=aux)

    @torch.no_grad()
    def guide_targets(self, regions, assign: torch.Tensor, grid: tuple, context) -> torch.Tensor:
        """(B, N, N_F + 1) soft labels per context token from the masks of all frames; each row sums to 1."""
        k = self.config.num_marks
        cover = grid_coverage(regions.masks.float(), *grid)  # (B, R, T, h, w)
        cover = cover * regions.valid.float()[:, :, None, None, None]
        total = cover.sum(1, keepdim=True)
        share = cover / total.clamp_min(1.0)  # overlaps (total > 1) share the cell in proportion
        background = (1.0 - share.sum(1)).clamp_min(0.0)  # (B, T, h, w)
        onehot = F.one_hot(assign, k + 1).float() * regions.valid.float()[..., None]  # (B, R, K+1)
        maps = torch.einsum("brthw,brk->bthwk", share, onehot)
        maps[..., k] = background
        labels = self.connector.reduce_maps(maps, context)  # (B, N, K+1)
        # Renormalise: a reduction that pads (stc's zero border) averages in cells that have no label at all.
        return labels / labels.sum(-1, keepdim=True).clamp_min(1e-12)

    def aux_loss(self, encoding, context_hidden):
        targets = encoding.aux.get("guide_targets")
        if targets is None or self.guide_head is None:
            return None
        logits = self.guide_head(context_hidden.to(self.guide_head.weight.dtype)).float()
        return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()
