"""RegionLM: the model (config, connectors, region encoders, modeling) and its processor."""

from transformers import AutoConfig, AutoModel

from .config import RegionLMConfig
from .inference import RegionLMSystem, load_eval_system
from .modeling import RegionLMForConditionalGeneration

AutoConfig.register("regionlm", RegionLMConfig, exist_ok=True)
AutoModel.register(RegionLMConfig, RegionLMForConditionalGeneration, exist_ok=True)

__all__ = ["RegionLMConfig", "RegionLMForConditionalGeneration", "RegionLMSystem", "load_eval_system"]
