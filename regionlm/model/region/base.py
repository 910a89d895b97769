"""What every region encoder takes and returns, and the registry that names them.

A region encoder sees the vision features ``(B, T, h, w, C)`` (before the connector), the connector (to project
into the LM's width exactly like the visual tokens) and the regions as masks at the model's input resolution. It
returns a :class:`RegionEncoding`: an optional residual added to the context tokens, the embeddings that replace
each sample's `<region>` placeholder tokens (and `<obj>` tokens), and what its auxiliary loss needs. Encoders that
write the region as text (``text_coords``) or draw it on the frames (``visual_marks``) return no embeddings; the
processor and :meth:`RegionEncoder.prepare_pixels` do their part.

Adding a design = one file with a ``@register_region_encoder("name")`` class + its name in config.REGION_ENCODERS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

REGION_ENCODER_REGISTRY: dict[str, type] = {}


def register_region_encoder(name: str):
    def wrap(cls):
        cls.name = name
        REGION_ENCODER_REGISTRY[name] = cls
        return cls

    return wrap


def build_region_encoder(config, connector) -> "RegionEncoder":
    from regionlm.model import region  # noqa: F401  (imports every encoder module, which registers it)

    try:
        cls = REGION_ENCODER_REGISTRY[config.region_encoder]
    except KeyError:
        raise ValueError(f"unknown region encoder {config.region_encoder!r}; registered: "
                         f"{', '.join(sorted(REGION_ENCODER_REGISTRY))}") from None
    return cls(config, connector)


@dataclass
class RegionInputs:
    """Regions of a batch, at the model's input resolution S (the frames' size after the processor).

    masks: (B, R, T, S, S) float in [0, 1], the region on every frame where it is known (all frames in training).
    given: (B, R, T) bool, the frames on which the region is shown to the model (e.g. only the first frame).
        Encoders use only given frames as input; the guide head is supervised on all frames of ``masks``.
    valid: (B, R) bool, which of the R slots are real regions (samples have different region counts).
    object_masks / object_valid: (B, O, T, S, S) / (B, O): the video's object tracks (object_tokens only).
    """

    masks: torch.Tensor
    given: torch.Tensor
    valid: torch.Tensor
    object_masks: Optional[torch.Tensor] = None
    object_valid: Optional[torch.Tensor] = None
    _host: Optional[tuple] = field(default=None, init=False, repr=False, compare=False)

    def on_host(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(given, valid) on the CPU, copied once per batch. Encoders plan their per-region bookkeeping (which
        slots, which frames, how many tokens) from these: reading a GPU tensor region by region waits for the GPU
        each time, which made small-model training wait on the host rather than compute."""
        if self._host is None:
            valid = self.valid if self.valid is not None else torch.ones(self.given.shape[:2], dtype=torch.bool)
            self._host = (self.given.cpu(), valid.cpu())
        return self._host

    def given_masks(self) -> torch.Tensor:
        """The masks with every frame that is not given zeroed."""
        return self.masks * self.given[..., None, None].to(self.masks.dtype)


@dataclass
class RegionEncoding:
    """residual: (B, N, D) added to the N context tokens, or None.
    region_embeds: per sample, (n_tokens, D) for its `<region>` placeholders in order (n_tokens =
        sum over its valid regions of config.tokens_per_region(given frames of that region)).
    object_embeds: per sample, (n_objects, D) for its `<obj>` placeholders, or None.
    aux: whatever :meth:`RegionEncoder.aux_loss` needs (e.g. guide-head targets)."""

    residual: Optional[torch.Tensor] = None
    region_embeds: Optional[list] = None
    object_embeds: Optional[list] = None
    aux: dict = field(default_factory=dict)


class RegionEncoder(nn.Module):
    """Base class. ``connector`` is the model's context connector (see connectors.Connector): use
    ``connector.project`` for vectors in vision-feature space, ``connector.reduce_maps`` to bring per-pixel-of-
    the-grid maps to the context tokens, ``connector.project_residual`` for a feature-space map."""

    name = "base"

    def __init__(self, config, connector):
        super().__init__()
        self.config = config
        self._connector = (connector,)  # a reference, not a submodule: its weights belong to the model

    @property
    def connector(self):
        return self._connector[0]

    def prepare_pixels(self, pixel_values: torch.Tensor, regions: RegionInputs) -> torch.Tensor:
        """Change the frames before the vision tower (visual marks); default: unchanged. (B, T, 3, S, S)."""
        return pixel_values

    def forward(self, features: torch.Tensor, regions: RegionInputs, context) -> RegionEncoding:
        """features: (B, T, h, w, C) vision features; context: the connector's output for these features."""
        raise NotImplementedError

    def aux_loss(self, encoding: RegionEncoding, context_hidden: torch.Tensor) -> Optional[torch.Tensor]:
        """Auxiliary loss from the LM's last hidden states at the context-token positions (B, N, D_lm);
        None when the encoder has none (or at inference)."""
        return None
