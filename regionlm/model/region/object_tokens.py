"""object_tokens (VideoOrion): every object track of the video becomes one `<obj>` token.

For each track (``regions.object_masks`` / ``object_valid``, from ground truth or the object pipeline): mask
pooling of the vision features on every frame where the object is present, then temporal pooling and a projector
to the LM's width, chosen by ``config.object_projector`` (the paper's ablation):

    mlp        mean over present frames -> own two-layer MLP (default)
    linear     mean over present frames -> one linear layer
    avg        mean over present frames -> the context connector's projector (no weights of its own)
    attention  a learned query attends over the present frame tokens -> MLP
    lstm       an LSTM reads the present frame tokens in time order; its last state -> linear

At most ``config.max_objects`` tokens per video (the first ones). Each `<region>` gets one token computed the same
way from its given masks, so a region given as exactly an object's track gets exactly that object's token.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from regionlm.model.connectors import Projector

from .base import RegionEncoder, RegionEncoding, register_region_encoder
from .common import (check_resolution, empty_embeds, grid_coverage, listed_objects, masked_pool, present_mean,
                     region_slots)

OBJECT_PROJECTOR_REGISTRY: dict[str, type] = {}


def register_object_projector(name: str):
    def wrap(cls):
        OBJECT_PROJECTOR_REGISTRY[name] = cls
        return cls

    return wrap


class ObjectProjector(nn.Module):
    """(frame tokens (M, T, C), present (M, T) bool) -> (M, D): temporal pooling + projection. Subclasses take
    (config, connector, vision_dim, text_dim)."""

    def __init__(self, config, connector, vision_dim: int, text_dim: int):
        super().__init__()


@register_object_projector("mlp")
class MeanMLP(ObjectProjector):
    def __init__(self, config, connector, vision_dim, text_dim):
        super().__init__(config, connector, vision_dim, text_dim)
        self.proj = Projector(vision_dim, text_dim, config.projector_hidden_act)

    def forward(self, tokens, present):
        return self.proj(present_mean(tokens, present))


@register_object_projector("linear")
class MeanLinear(ObjectProjector):
    def __init__(self, config, connector, vision_dim, text_dim):
        super().__init__(config, connector, vision_dim, text_dim)
        self.proj = nn.Linear(vision_dim, text_dim)

    def forward(self, tokens, present):
        return self.proj(present_mean(tokens, present))


@register_object_projector("avg")
class MeanConnector(ObjectProjector):
    def __init__(self, config, connector, vision_dim, text_dim):
        super().__init__(config, connector, vision_dim, text_dim)
        self._connector = (connector,)  # a reference: the connector's weights belong to the model

    def forward(self, tokens, present):
        return self._connector[0].project(present_mean(tokens, present))


@register_object_projector("attention")
class QueryAttention(ObjectProjector):
    def __init__(self, config, connector, vision_dim, text_dim):
        super().__init__(config, connector, vision_dim, text_dim)
        self.query = nn.Parameter(torch.randn(vision_dim) / math.sqrt(vision_dim))
        self.key = nn.Linear(vision_dim, vision_dim)
        self.proj = Projector(vision_dim, text_dim, config.projector_hidden_act)

    def forward(self, tokens, present):
        scores = self.key(tokens) @ self.query.to(tokens.dtype) / math.sqrt(tokens.shape[-1])  # (M, T)
        scores = scores.masked_fill(~present, float("-inf"))
        attn = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # a track never present attends to nothing
        return self.proj(torch.einsum("mt,mtc->mc", attn, tokens))


@register_object_projector("lstm")
class FrameLSTM(ObjectProjector):
    def __init__(self, config, connector, vision_dim, text_dim):
        super().__init__(config, connector, vision_dim, text_dim)
        self.lstm = nn.LSTM(vision_dim, text_dim, batch_first=True)
        self.out = nn.Linear(text_dim, text_dim)

    def forward(self, tokens, present):
        # Present frames first, in time order (a stable sort keeps it), so the LSTM reads only them.
        order = torch.sort((~present).to(torch.uint8), dim=1, stable=True).indices
        packed_in = tokens.gather(1, order[..., None].expand_as(tokens))
        packed_in = packed_in * present.gather(1, order)[..., None].to(tokens.dtype)
        lengths = present.sum(1).clamp_min(1).cpu()  # a track never present reads one step of zeros
        _, (hidden, _) = self.lstm(pack_padded_sequence(packed_in, lengths, batch_first=True, enforce_sorted=False))
        return self.out(hidden[-1])


@register_region_encoder("object_tokens")
class ObjectTokensEncoder(RegionEncoder):
    def __init__(self, config, connector):
        super().__init__(config, connector)
        self.projector = OBJECT_PROJECTOR_REGISTRY[config.object_projector](
            config, connector, int(config.vision_config.hidden_size), int(config.text_config.hidden_size))

    def encode_tracks(self, features, masks, shown) -> torch.Tensor:
        """masks (B, K, T, S, S), shown (B, K, T) bool -> (B, K, D): one token per track, from the frames where it
        is shown and not empty."""
        b, t, h, w, c = features.shape
        pooled, area = masked_pool(features, grid_coverage(masks.to(features.dtype), h, w))  # (B, K, T, C)
        present = shown.to(torch.bool) & (area > 0)
        out = self.projector(pooled.flatten(0, 1), present.flatten(0, 1))
        return out.reshape(b, masks.shape[1], -1)

    def forward(self, features, regions, context):
        b = features.shape[0]
        d = context.tokens.shape[-1]
        check_resolution(regions, self.config.image_size)
        object_embeds = empty_embeds(b, d, context.tokens)
        if regions.object_masks is not None and regions.object_masks.shape[1] > 0:
            objects = regions.object_masks
            shown = torch.ones(objects.shape[:3], dtype=torch.bool, device=objects.device)
            object_embeds = listed_objects(self.encode_tracks(features, objects, shown), regions,
                                           self.config.max_objects)
        region_embeds = empty_embeds(b, d, context.tokens)
        if regions.masks is not None and regions.masks.shape[1] > 0:
            tokens = self.encode_tracks(features, regions.masks, regions.given)
            region_embeds = [tokens[i, slots] for i, slots in enumerate(region_slots(regions))]
        return RegionEncoding(region_embeds=region_embeds, object_embeds=object_embeds)
