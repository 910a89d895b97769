"""RegionLMForConditionalGeneration: vision tower -> context connector -> (region encoder) -> causal LM.

One splice, no per-design branches: the processor has already expanded every placeholder to the number of tokens
the config says (``<video>`` -> context tokens, ``<region>`` -> region tokens, ``<obj>`` -> object tokens), so the
model only fills those positions, in order, with what the connector and the region encoder return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, PreTrainedModel
from transformers.utils import ModelOutput

from .config import RegionLMConfig
from .connectors import build_connector
from .kv_cache import cache_kwargs, output_cache
from .region.base import RegionInputs, build_region_encoder


@dataclass
class RegionLMOutput(ModelOutput):
    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    lm_loss: Optional[torch.Tensor] = None
    aux_loss: Optional[torch.Tensor] = None
    pixel_loss: Optional[torch.Tensor] = None
    cache: Optional[object] = None  # the language model's key/value cache (named `cache` from transformers 5.24)


class RegionLMPreTrainedModel(PreTrainedModel):
    config_class = RegionLMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules: list = []

    def _init_weights(self, module):
        # Only the parts this file adds; the vision tower and the LM initialise themselves.
        std = getattr(module, "init_std", 0.02)  # a layer may ask for its own scale (mask_pool's embeddings)
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _vision_dim(config) -> int:
    return int(getattr(config.vision_config, "hidden_size"))


def _patch(config) -> int:
    return int(config.vision_config.patch_size)


def pixel_targets(pixel_values: torch.Tensor, grid: int, patch: int) -> torch.Tensor:
    """(B, T, 3, S, S) -> (B, T, g, g, 3 * (p/2)^2): each patch's pixels, 2x2 average-pooled."""
    b, t = pixel_values.shape[:2]
    x = nn.functional.avg_pool2d(pixel_values.flatten(0, 1)[..., :grid * patch, :grid * patch], 2)
    q = patch // 2
    x = x.reshape(b, t, 3, grid, q, grid, q).permute(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(b, t, grid, grid, 3 * q * q)


class RegionLMForConditionalGeneration(RegionLMPreTrainedModel):
    def __init__(self, config: RegionLMConfig):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.connector = build_connector(config, _vision_dim(config), int(config.text_config.hidden_size))
        self.region_encoder = build_region_encoder(config, self.connector)
        if config.pixel_recon_alpha > 0:
            self.pixel_head = nn.Linear(_vision_dim(config), 3 * (_patch(config) // 2) ** 2)
        self.post_init()

    @classmethod
    def from_parts(cls, vision_path, lm_path, dtype=None, **config_kwargs) -> "RegionLMForConditionalGeneration":
        """A RegionLM around real checkpoints in local folders: any HF vision model (a full SigLIP/CLIP checkpoint
        gives its vision tower) and any HF causal LM (Qwen2, Qwen2.5, ...). The connector and region encoder are
        new (random); ``config_kwargs`` set the rest of RegionLMConfig (token ids: see the processor)."""
        from transformers import AutoConfig

        vision = _load_vision_tower(vision_path, dtype)
        lm = _load_part(AutoModelForCausalLM, lm_path, "a causal language model", dtype)
        config = RegionLMConfig(vision_config=vision.config.to_dict(), text_config=lm.config.to_dict(),
                                **config_kwargs)
        with torch.device("meta"):  # the random vision tower and LM would be thrown away: do not allocate them
            model = cls(config)
        model.vision_tower, model.language_model = vision, lm
        model.connector = build_connector(config, _vision_dim(config), int(config.text_config.hidden_size))
        model.region_encoder = build_region_encoder(config, model.connector)
        for part in (model.connector, model.region_encoder):
            part.apply(model._init_weights)
        if dtype is not None:
            model.to(dtype)
        return model

    # ------------------------------------------------------------ parts

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def vision_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, S, S) -> (B, T, h, w, C) features of ``vision_feature_layer``."""
        b, t = pixel_values.shape[:2]
        layer = self.config.vision_feature_layer
        frames, inverse = pixel_values.flatten(0, 1), None
        if not self.training and len(frames) > 1:
            # Inference often shows the same frames more than once (grounding's candidates on one clip, beams, a
            # REC frame repeated): the tower sees each distinct frame once (frames are encoded independently).
            unique, inverse = torch.unique(frames.flatten(1), dim=0, return_inverse=True)
            frames, inverse = (unique.view(-1, *frames.shape[1:]), inverse) if len(unique) < len(frames) \
                else (frames, None)
        out = self.vision_tower(pixel_values=frames, output_hidden_states=layer != -1)
        # The last layer as the tower returns it (after SigLIP's post-layernorm, so those weights train too).
        hidden = out.last_hidden_state if layer == -1 else out.hidden_states[layer]
        if inverse is not None:
            hidden = hidden[inverse]
        g = self.config.grid_size
        if hidden.shape[1] == g * g + 1:  # CLIP-style class token first
            hidden = hidden[:, 1:]
        if hidden.shape[1] != g * g:
            raise ValueError(f"vision tower returned {hidden.shape[1]} tokens per frame, expected {g}x{g}")
        return hidden.reshape(b, t, g, g, hidden.shape[-1])

    # ------------------------------------------------------------ embedding

    def context_tokens(self, features: torch.Tensor):
        """The connector's tokens of vision features (B, T, h, w, C) with the config's place and time embeddings
        added, and the connector's output (for its maps)."""
        context = self.connector(features)
        tokens = context.tokens
        if self.config.context_positions:
            tokens = tokens + self.connector.position_embeds(features, context)
        if self.config.context_frames:
            tokens = tokens + self.connector.frame_embeds(features, context)
        return tokens, context

    def embed_inputs(self, input_ids, pixel_values=None, region_masks=None, region_given=None, region_valid=None,
                     object_masks=None, object_valid=None, return_features=False):
        """Token embeddings with context, region and object tokens spliced in. Returns (embeds, encoding,
        context mask (B, L) bool), and with ``return_features`` also the vision features and the pixels they
        were computed from (None without pixel_values)."""
        cfg = self.config
        # placeholders are counted on a host copy, taken before this batch's work is queued: a check that read
        # the device later would wait there for everything queued before it
        ids = input_ids.cpu()
        embeds = self.get_input_embeddings()(input_ids)
        video_pos = input_ids == cfg.video_token_id
        encoding = None
        if pixel_values is None:
            if (ids == cfg.video_token_id).any():
                raise ValueError("the prompt has <video> tokens but no pixel_values were given")
            return (embeds, encoding, video_pos, None, None) if return_features else (embeds, encoding, video_pos)
        regions = None
        if region_masks is not None or object_masks is not None:
            regions = RegionInputs(region_masks, region_given, region_valid, object_masks, object_valid)
            if region_given is not None:
                regions.on_host()  # the regions' bookkeeping copied to the host now too, as ids above
            pixel_values = self.region_encoder.prepare_pixels(pixel_values, regions)
        features = self.vision_features(pixel_values.to(self.dtype))
        tokens, context = self.context_tokens(features)
        if regions is not None:
            encoding = self.region_encoder(features, regions, context)
            if encoding.residual is not None:
                tokens = tokens + encoding.residual
        embeds = _splice(embeds, video_pos, tokens.flatten(0, 1), "<video>", (ids == cfg.video_token_id).sum(1),
                         per_sample=tokens.shape[1])
        if encoding is not None:
            for name, token_id, parts in (("<region>", cfg.region_token_id, encoding.region_embeds),
                                          ("<obj>", cfg.object_token_id, encoding.object_embeds)):
                counts = (ids == token_id).sum(1)
                if parts is None:
                    if counts.any():
                        raise ValueError(f"the prompt has {name} tokens but the {cfg.region_encoder} encoder "
                                         f"gives no embeddings for them")
                    continue
                for b, (n, part) in enumerate(zip(counts.tolist(), parts)):
                    if n != len(part):
                        raise ValueError(f"sample {b}: {n} {name} tokens in the prompt, the encoder gave {len(part)}")
                if counts.any():
                    embeds = _splice(embeds, input_ids == token_id, torch.cat(list(parts)), name, counts)
        elif (ids == cfg.region_token_id).any() or (ids == cfg.object_token_id).any():
            raise ValueError("the prompt has <region>/<obj> tokens but no region or object masks were given")
        if return_features:
            return embeds, encoding, video_pos, features, pixel_values
        return embeds, encoding, video_pos

    # ------------------------------------------------------------ forward / generate

    def forward(self, input_ids=None, attention_mask=None, pixel_values=None, region_masks=None,
                region_given=None, region_valid=None, object_masks=None, object_valid=None, labels=None,
                inputs_embeds=None, cache=None, use_cache=None, past_key_values=None, **kwargs) -> RegionLMOutput:
        encoding, video_pos, features, pixels = None, None, None, None
        if inputs_embeds is None:
            inputs_embeds, encoding, video_pos, features, pixels = self.embed_inputs(
                input_ids, pixel_values, region_masks, region_given, region_valid, object_masks, object_valid,
                return_features=True)
        want_aux = labels is not None and encoding is not None and bool(encoding.aux)
        if labels is not None and use_cache is None:  # training: the LM would fill a key/value cache for nothing
            use_cache = False
        cache = cache if cache is not None else past_key_values
        out = self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels,
                                  use_cache=use_cache, output_hidden_states=want_aux,
                                  **cache_kwargs(self.language_model, cache), **kwargs)
        loss, aux = out.loss, None
        if want_aux:
            last = out.hidden_states[-1]
            n = int(video_pos[0].sum())
            aux = self.region_encoder.aux_loss(encoding, last[video_pos].reshape(last.shape[0], n, -1))
            if aux is not None:
                loss = loss + self.config.guide_alpha * aux
        pixel_loss = None
        if labels is not None and features is not None and getattr(self, "pixel_head", None) is not None:
            target = pixel_targets(pixels.to(features.dtype), self.config.grid_size, _patch(self.config))
            pixel_loss = nn.functional.mse_loss(self.pixel_head(features), target)
            loss = loss + self.config.pixel_recon_alpha * pixel_loss
        return RegionLMOutput(loss=loss, logits=out.logits, lm_loss=out.loss, aux_loss=aux, pixel_loss=pixel_loss,
                              cache=output_cache(out))

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, pixel_values=None, region_masks=None, region_given=None,
                 region_valid=None, object_masks=None, object_valid=None, **generate_kwargs):
        """Greedy/sampled decoding from the spliced prompt; returns only the new token ids (B, L_new)."""
        embeds, _, _ = self.embed_inputs(input_ids, pixel_values, region_masks, region_given, region_valid,
                                         object_masks, object_valid)
        if attention_mask is None:
            attention_mask = torch.ones(input_ids.shape, dtype=torch.long, device=input_ids.device)
        return self.language_model.generate(inputs_embeds=embeds, attention_mask=attention_mask, **generate_kwargs)


def _load_part(auto_cls, path, what: str, dtype=None):
    from pathlib import Path

    from regionlm.errors import RegionLMError

    if not (Path(path) / "config.json").is_file():
        raise RegionLMError(f"{path}: not a Hugging Face checkpoint folder (no config.json); expected {what}")
    try:
        return auto_cls.from_pretrained(path, dtype=dtype)
    except (ValueError, KeyError) as err:
        raise RegionLMError(f"{path}: cannot load {what} from this folder ({err})".splitlines()[0]) from None


def _load_vision_tower(path, dtype=None):
    """The vision model of a checkpoint folder; for a dual encoder (SigLIP, CLIP) only its vision half."""
    from pathlib import Path

    from transformers import AutoConfig

    from regionlm.errors import RegionLMError

    if not (Path(path) / "config.json").is_file():
        raise RegionLMError(f"{path}: not a Hugging Face checkpoint folder (no config.json); expected a vision model")
    cfg = AutoConfig.from_pretrained(path)
    vision_cfg = getattr(cfg, "vision_config", None) or cfg
    try:
        cls = AutoModel._model_mapping[type(vision_cfg)]
    except KeyError:
        raise RegionLMError(f"{path}: model_type {cfg.model_type!r} has no vision model class") from None
    return cls.from_pretrained(path, dtype=dtype)


def _splice(embeds: torch.Tensor, positions: torch.Tensor, values: torch.Tensor, name: str, counts: torch.Tensor,
            per_sample: Optional[int] = None) -> torch.Tensor:
    """Put ``values`` (n, D) at the True ``positions`` (B, L), row by row (differentiable in values); ``counts``
    (B,) are the positions per row, on the host."""
    if per_sample is not None and (counts != per_sample).any():
        raise ValueError(f"each sample needs {per_sample} {name} tokens for its frames, the prompt has "
                         f"{counts.tolist()}: the processor and the model config disagree")
    if int(counts.sum()) != values.shape[0]:
        raise ValueError(f"{int(counts.sum())} {name} tokens in the batch, {values.shape[0]} embeddings")
    mask = positions[..., None].expand_as(embeds)
    return embeds.masked_scatter(mask, values.to(embeds.dtype))


# AutoConfig / AutoModel know "regionlm" once the model class exists (from_pretrained through the Auto classes).
def _register_auto_classes() -> None:
    from transformers import AutoConfig, AutoModel

    AutoConfig.register("regionlm", RegionLMConfig, exist_ok=True)
    AutoModel.register(RegionLMConfig, RegionLMForConditionalGeneration, exist_ok=True)


_register_auto_classes()
