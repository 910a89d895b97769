"""Context connectors: vision features (B, T, h, w, C) -> context tokens (B, N, D) for the language model.

Each connector is a reduction (pooling, 3-D convolution or token selection) followed by a projector (MLP). Region
encoders reuse both halves through three methods, so a region is projected exactly like the visual tokens:

* ``reduce_maps(maps, out)``: per-cell maps (B, T, h, w, K) -> (B, N, K), each token's average over the cells
  it covers (masks -> per-token coverage, for the guide head's labels);
* ``project_residual(fmap, out)``: a feature-space map (B, T, h, w, C) -> (B, N, D) through the same reduction and
  projector, minus the projection of zero, so it is exactly zero on tokens whose cells are all zero;
* ``project(v)``: a feature-space vector (..., C) -> (..., D), as if it filled a token's whole receptive field.

With ``context_positions`` every connector also embeds where each token sits in the frame (``position_embeds``):
the mean centre of the cells it covers, through ``reduce_maps``, so pooled, convolved and selected tokens all get
the place they stand for. With ``context_frames`` it embeds, the same way, the time in the clip a token stands for
(its frames' mean centre as a fraction of the clip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN

CONNECTOR_REGISTRY: dict[str, type] = {}


def register_connector(name: str):
    def wrap(cls):
        cls.name = name
        CONNECTOR_REGISTRY[name] = cls
        return cls

    return wrap


def build_connector(config, vision_dim: int, text_dim: int) -> "Connector":
    return CONNECTOR_REGISTRY[config.connector](config, vision_dim, text_dim)


@dataclass
class ContextOutput:
    tokens: torch.Tensor  # (B, N, D)
    frame_index: torch.Tensor  # (N,) first frame each token covers
    state: dict = field(default_factory=dict)  # what reduce_maps / project_residual need (e.g. selected cells)


class Projector(nn.Module):
    """LLaVA's two-layer MLP."""

    def __init__(self, in_dim: int, out_dim: int, act: str = "gelu"):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.act = ACT2FN[act]
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


POSITION_FREQS = 8  # context_positions / context_frames: sin/cos of pi * k * coordinate, k = 1..8, for x, y, t


def fourier_positions(coords: torch.Tensor, freqs: int = POSITION_FREQS) -> torch.Tensor:
    """(..., k) coordinates in [0, 1] -> (..., 2 * k * freqs): per coordinate, its sines then its cosines. Smooth
    in the place; two nearby cells differ at the high frequencies."""
    angles = coords[..., None] * (math.pi * torch.arange(1, freqs + 1, device=coords.device, dtype=coords.dtype))
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


def cell_centres(batch: int, frames: int, h: int, w: int, device, dtype) -> torch.Tensor:
    """(B, T, h, w, 2): each cell's centre (x, y) as a fraction of the frame."""
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (h, w, 2) as (x, y)
    return grid.expand(batch, frames, h, w, 2).contiguous()


def cell_times(batch: int, frames: int, h: int, w: int, device, dtype) -> torch.Tensor:
    """(B, T, h, w, 1): each cell's frame centre as a fraction of the clip."""
    ts = (torch.arange(frames, device=device, dtype=dtype) + 0.5) / frames
    return ts[None, :, None, None, None].expand(batch, frames, h, w, 1).contiguous()


class Connector(nn.Module):
    name = "base"

    def __init__(self, config, vision_dim: int, text_dim: int):
        super().__init__()
        self.config = config
        self.projector = Projector(vision_dim, text_dim, config.projector_hidden_act)
        if config.context_positions:
            # The LM writes boxes as numbers (SOT, REC, Elysium); a learned map from a token's place to text space
            # tells it where each token is, which it otherwise has to recover from the tower's input embeddings
            # or the token's index in the sequence.
            self.position = nn.Linear(4 * POSITION_FREQS, text_dim)
        if config.context_frames:
            # and which frame: a track's answer writes "Frame k: [box]", so box k must be read from frame k's
            # tokens, which a fresh LM otherwise tells apart only by their index in the sequence
            self.frame_position = nn.Linear(2 * POSITION_FREQS, text_dim)

    def forward(self, features: torch.Tensor) -> ContextOutput:
        raise NotImplementedError

    def reduce_maps(self, maps: torch.Tensor, out: ContextOutput) -> torch.Tensor:
        raise NotImplementedError

    def project_residual(self, fmap: torch.Tensor, out: ContextOutput) -> torch.Tensor:
        raise NotImplementedError

    def project(self, v: torch.Tensor) -> torch.Tensor:
        return self.projector(v)

    def position_embeds(self, features: torch.Tensor, out: ContextOutput) -> torch.Tensor:
        """(B, N, D): each context token's place (the mean centre of the cells it covers), embedded."""
        b, t, h, w, _ = features.shape
        centres = self.reduce_maps(cell_centres(b, t, h, w, features.device, self.position.weight.dtype), out)
        return self.position(fourier_positions(centres))

    def frame_embeds(self, features: torch.Tensor, out: ContextOutput) -> torch.Tensor:
        """(B, N, D): the time in the clip each context token stands for (its frames' mean centre), embedded."""
        b, t, h, w, _ = features.shape
        times = self.reduce_maps(cell_times(b, t, h, w, features.device, self.frame_position.weight.dtype), out)
        return self.frame_position(fourier_positions(times))

    def _minus_zero(self, x: torch.Tensor) -> torch.Tensor:
        """projector(x) - projector(0): a projection that keeps zero at zero (exactly, not up to rounding)."""
        shifted = self.projector(x) - self.projector(torch.zeros_like(x[..., :1, :]))
        return torch.where((x != 0).any(-1, keepdim=True), shifted, torch.zeros_like(shifted))


def _pool_cells(x: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, T, h, w, C) -> (B, T, ceil(h/s), ceil(w/s), C) average pooling; partial windows average what they
    cover."""
    b, t, h, w, c = x.shape
    y = x.permute(0, 1, 4, 2, 3).reshape(b * t, c, h, w)
    y = F.avg_pool2d(y, stride, stride, ceil_mode=True, count_include_pad=False)
    return y.reshape(b, t, c, y.shape[-2], y.shape[-1]).permute(0, 1, 3, 4, 2)


@register_connector("pool")
class PoolConnector(Connector):
    """Spatial average pooling (stride ``pool_stride``) + MLP, per frame."""

    def forward(self, features):
        pooled = _pool_cells(features, self.config.pool_stride)
        b, t, h, w, c = pooled.shape
        tokens = self.projector(pooled.reshape(b, t * h * w, c))
        frame_index = torch.arange(t, device=features.device).repeat_interleave(h * w)
        return ContextOutput(tokens, frame_index)

    def reduce_maps(self, maps, out):
        pooled = _pool_cells(maps, self.config.pool_stride)
        return pooled.reshape(maps.shape[0], -1, maps.shape[-1])

    def project_residual(self, fmap, out):
        return self._minus_zero(self.reduce_maps(fmap, out))


@register_connector("stc")
class STCConnector(Connector):
    """VideoLLaMA2-style spatial-temporal convolution: a 3-D convolution with kernel = stride
    (``stc_temporal_stride`` frames x ``pool_stride``^2 cells) downsamples space and time, then the MLP.
    Space is downsampled without padding (a 27x27 SigLIP grid -> 13x13, VideoRefer's 16 frames -> 8 x 169 = 1,352
    tokens); clips whose length is not a multiple of the temporal stride are padded by repeating the last frame."""

    def __init__(self, config, vision_dim, text_dim):
        super().__init__(config, vision_dim, text_dim)
        k = (config.stc_temporal_stride, config.pool_stride, config.pool_stride)
        self.conv = nn.Conv3d(vision_dim, vision_dim, kernel_size=k, stride=k)

    def _pad(self, x):
        b, t, h, w, c = x.shape
        pt = (-t) % self.config.stc_temporal_stride
        if pt:
            x = torch.cat([x, x[:, -1:].expand(b, pt, h, w, c)], dim=1)
        return x

    def _conv(self, x, bias=True):
        y = F.conv3d(self._pad(x).permute(0, 4, 1, 2, 3), self.conv.weight, self.conv.bias if bias else None,
                     stride=self.conv.stride)
        return y.permute(0, 2, 3, 4, 1)  # (B, T', h', w', C)

    def forward(self, features):
        y = self._conv(features)
        b, t, h, w, c = y.shape
        tokens = self.projector(y.reshape(b, t * h * w, c))
        frame_index = (torch.arange(t, device=features.device) * self.config.stc_temporal_stride)
        return ContextOutput(tokens, frame_index.repeat_interleave(h * w))

    def reduce_maps(self, maps, out):
        x = self._pad(maps)
        k = self.conv.kernel_size
        y = F.avg_pool3d(x.permute(0, 4, 1, 2, 3), k, k).permute(0, 2, 3, 4, 1)
        return y.reshape(maps.shape[0], -1, maps.shape[-1])

    def project_residual(self, fmap, out):
        y = self._conv(fmap, bias=False)
        return self._minus_zero(y.reshape(fmap.shape[0], -1, y.shape[-1]))

    def project(self, v):
        # The convolution of a constant field v: the kernel summed over its taps, applied to v, plus the bias.
        w = self.conv.weight.sum(dim=(2, 3, 4))  # (C_out, C_in)
        return self.projector(F.linear(v, w, self.conv.bias))


@register_connector("t_selector")
class TSelectorConnector(Connector):
    """Elysium's T-Selector: an MLP gate scores every cell of a frame; the top ``t_selector_keep`` cells per frame
    are kept, in raster order, and projected.

    Top-k is not differentiable, so the gate is trained with a straight-through estimator: each kept token is
    multiplied by ``1 + s - stop_grad(s)`` where ``s = sigmoid(gate score)``. The forward value is unchanged (x 1);
    the backward pass gives the gate the gradient it would get if the token were scaled by its own score, so cells
    whose features lower the loss are pushed up the ranking.
    """

    def __init__(self, config, vision_dim, text_dim):
        super().__init__(config, vision_dim, text_dim)
        self.gate = nn.Sequential(nn.Linear(vision_dim, max(vision_dim // 4, 1)), nn.GELU(),
                                  nn.Linear(max(vision_dim // 4, 1), 1))

    def forward(self, features):
        b, t, h, w, c = features.shape
        cells = features.reshape(b, t, h * w, c)
        scores = self.gate(cells).squeeze(-1)  # (B, T, hw)
        k = min(self.config.t_selector_keep, h * w)
        index = scores.topk(k, dim=-1).indices.sort(dim=-1).values  # raster order within each frame
        kept = cells.gather(2, index[..., None].expand(b, t, k, c))
        s = torch.sigmoid(scores.gather(2, index))
        kept = kept * (1 + s - s.detach())[..., None]
        tokens = self.projector(kept.reshape(b, t * k, c))
        frame_index = torch.arange(t, device=features.device).repeat_interleave(k)
        return ContextOutput(tokens, frame_index, {"index": index, "scores": scores})

    def _gather(self, maps, out):
        b, t, h, w, k_ = maps.shape
        index = out.state["index"]
        kept = maps.reshape(b, t, h * w, k_).gather(2, index[..., None].expand(*index.shape, k_))
        return kept.reshape(b, -1, k_)

    def reduce_maps(self, maps, out):
        return self._gather(maps, out)

    def project_residual(self, fmap, out):
        return self._minus_zero(self._gather(fmap, out))


def context_grid(config, num_frames: int) -> tuple:
    """(frames, rows, cols) of the pool/stc token layout, for tests and plots."""
    if config.connector == "stc":
        g = config.grid_size // config.pool_stride
        return math.ceil(num_frames / config.stc_temporal_stride), g, g
    g = math.ceil(config.grid_size / config.pool_stride)
    return num_frames, g, g
