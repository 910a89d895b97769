"""benchmarks/geometry_probe.py: each shuffle reaches the model (a random model's loss moves), the JSON, and a model
without the embeddings is refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from regionlm.model import RegionLMConfig, RegionLMForConditionalGeneration
from regionlm.model.processing import RegionLMProcessor
from regionlm.model.tokenizer import train_tokenizer, world_corpus

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import geometry_probe  # noqa: E402

VISION = {"model_type": "siglip_vision_model", "vision_use_head": False, "image_size": 32, "patch_size": 8,
          "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}


def save_tiny(folder: Path, tokenizer, **options) -> Path:
    torch.manual_seed(0)
    text = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": len(tokenizer),
            "tie_word_embeddings": True}
    cfg = RegionLMConfig(region_encoder="mask_pool", vision_config=dict(VISION), text_config=text, num_frames=4,
                         **options)
    RegionLMForConditionalGeneration(cfg).save_pretrained(folder)
    RegionLMProcessor(tokenizer, cfg).save_pretrained(folder)
    return folder


def test_every_shuffle_reaches_the_model_and_the_json_is_written(tmp_path):
    tokenizer = train_tokenizer(world_corpus(2), vocab_size=512)
    model = save_tiny(tmp_path / "m", tokenizer, region_geometry=True, region_silhouette=True)
    assert geometry_probe.main(["--model", str(model), "--batches", "1", "--out", str(tmp_path / "out"),
                                "--threads", "1"]) == 0
    result = json.loads((tmp_path / "out" / "geometry_probe.json").read_text())
    losses = result["lm_loss"]
    assert list(losses) == ["as given", "velocity shuffled", "centre + size shuffled", "silhouette shuffled",
                            "regions of another sample"]
    # a random model's tokens depend on every input at std 0.2: each shuffle must change its loss
    for name, value in losses.items():
        if name != "as given":
            assert abs(value - losses["as given"]) > 1e-6, name
    plain = save_tiny(tmp_path / "plain", tokenizer)
    assert geometry_probe.main(["--model", str(plain), "--out", str(tmp_path / "out2")]) == 2
