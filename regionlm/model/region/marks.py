"""Token Marks (Omni-RGPT), the parts that any encoder can carry: learnable marks added to the context tokens
inside each region's given masks, and the Temporal Region Guide Head's soft targets and loss.

``token_mark`` is made of these alone (its `<region>` token is the projected mark); ``mask_pool`` adds them with
``config.region_marks`` (the projected mark is one more token of the region, after its pooled ones, so the text's
region tokens and the marked context tokens share one vector: pooling says what the region looks like, the mark
where it is in the video). Both keep the parameters named ``marks`` and ``guide_head`` on the encoder itself, so
saved weights load.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from regionlm.errors import RegionError

from .common import grid_coverage

EPS = 1e-6


def new_marks(config) -> tuple[nn.Parameter, nn.Module | None]:
    """(marks (num_marks, vision width), guide head over the LM's hidden states or None) for ``config``."""
    # config.mark_init_std: by default unit scale, the order of a vision transformer's hidden states, so regions
    # are told apart from step 0 (embedding-style 0.02 marks would vanish next to the features they are added to)
    marks = nn.Parameter(torch.randn(config.num_marks, int(config.vision_config.hidden_size)) * config.mark_init_std)
    head = (nn.Linear(int(config.text_config.hidden_size), config.num_marks + 1) if config.guide_head else None)
    return marks, head


def assign_marks(num_marks: int, batch: int, slots: int, device, training: bool) -> torch.Tensor:
    """(B, R) mark index per region slot: random without replacement per sample in training (so no mark becomes
    "the first region"), slot i -> mark i at inference."""
    if slots > num_marks:
        raise RegionError(f"region_masks: {slots} region slots, but the encoder has only {num_marks} marks "
                          f"(config.num_marks)")
    if training:
        return torch.stack([torch.randperm(num_marks)[:slots] for _ in range(batch)]).to(device)
    return torch.arange(slots, device=device).expand(batch, slots)


def mark_residual(marks: torch.Tensor, regions, grid: tuple, connector, context) -> torch.Tensor:
    """The marks' residual on the context tokens (B, N, D): per frame, S_hw = sum_i m_i,hw r_i / (eps + sum_i
    m_i,hw) from the given masks' coverage m, through the connector's reduction and projector (exactly zero on
    tokens no mask touches). ``marks``: (B, R, C), region i's mark."""
    valid = regions.valid.to(marks.dtype)[:, :, None, None, None]  # (B, R, 1, 1, 1)
    cover = grid_coverage(regions.given_masks().to(marks.dtype), *grid) * valid  # (B, R, T, h, w)
    weighted = torch.einsum("brthw,brc->bthwc", cover, marks)
    mark_map = weighted / (EPS + cover.sum(1))[..., None]  # (B, T, h, w, C), zero outside every mask
    return connector.project_residual(mark_map, context)


@torch.no_grad()
def guide_targets(regions, assign: torch.Tensor, num_marks: int, grid: tuple, connector, context) -> torch.Tensor:
    """(B, N, num_marks + 1) soft labels per context token from the masks of ALL frames (so a region marked on
    one frame is still followed through the clip); each row sums to 1. A token's label is the average over the
    cells it covers of each cell's split between the regions covering it (overlaps share in proportion to
    coverage) and background (what no region covers)."""
    k = num_marks
    cover = grid_coverage(regions.masks.float(), *grid)  # (B, R, T, h, w)
    cover = cover * regions.valid.float()[:, :, None, None, None]
    total = cover.sum(1, keepdim=True)
    share = cover / total.clamp_min(1.0)  # overlaps (total > 1) share the cell in proportion
    background = (1.0 - share.sum(1)).clamp_min(0.0)  # (B, T, h, w)
    onehot = F.one_hot(assign, k + 1).float() * regions.valid.float()[..., None]  # (B, R, K+1)
    maps = torch.einsum("brthw,brk->bthwk", share, onehot)
    maps[..., k] = background
    labels = connector.reduce_maps(maps, context)  # (B, N, K+1)
    # Renormalise: a reduction that pads (stc's zero border) averages in cells that have no label at all.
    return labels / labels.sum(-1, keepdim=True).clamp_min(1e-12)


def mark_regions(encoder, features: torch.Tensor, regions, context) -> tuple:
    """The marks' part of ``encoder``'s encoding (it holds ``marks``, ``guide_head``, ``config``, ``connector``):
    (each region's projected mark (B, R, D), the context residual (B, N, D), aux with the guide head's targets
    in training)."""
    b, _, h, w, _ = features.shape
    config = encoder.config
    assign = assign_marks(config.num_marks, b, regions.masks.shape[1], features.device, encoder.training)
    marks = encoder.marks[assign].to(features.dtype)  # (B, R, C)
    residual = mark_residual(marks, regions, (h, w), encoder.connector, context)
    aux = {}
    if encoder.training and encoder.guide_head is not None:
        aux["guide_targets"] = guide_targets(regions, assign, config.num_marks, (h, w), encoder.connector, context)
    return encoder.connector.project(marks), residual, aux


def guide_loss(head: nn.Module | None, encoding, context_hidden: torch.Tensor):
    """Cross-entropy of the guide head on the LM's last hidden states at the context tokens against the soft
    targets in ``encoding.aux``; None when there is no head or no targets (inference)."""
    targets = encoding.aux.get("guide_targets")
    if targets is None or head is None:
        return None
    logits = head(context_hidden.to(head.weight.dtype)).float()
    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()
