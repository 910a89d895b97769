"""model.ordinal_numbers (regionlm/model/ordinal.py): a fresh LM's number tokens start with an embedding of their
value, smooth in it, and the connector's place map (context_positions) starts pointing the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from regionlm.errors import RegionLMError
from regionlm.model.connectors import fourier_positions
from regionlm.model.tokenizer import NUMBERS
from regionlm.train.config import config_from_dict
from regionlm.train.trainer import build_model

REPO = Path(__file__).resolve().parents[1]
TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "max_position_embeddings": 512, "tie_word_embeddings": True}
VISION = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
          "num_attention_heads": 2}


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(REPO / "regionlm" / "assets" / "default_model")


def model_with(tokenizer, ordinal: bool, **spec):
    cfg = {"model": {"config": {"region_encoder": "mask_pool", "connector": "pool", "context_positions": True,
                                "vision_config": VISION, "text_config": TEXT},
                     "ordinal_numbers": ordinal, **spec},
           "data": {"source": "world"}, "stages": [{"name": "s", "steps": 1, "lr": 1e-3, "trainable": ["connector"]}], "seed": 3}
    torch.manual_seed(0)
    return build_model(config_from_dict(cfg), tokenizer)


def test_numbers_start_smooth_in_their_value_and_the_rest_is_untouched(tokenizer):
    ordinal, plain = model_with(tokenizer, True), model_with(tokenizer, False)
    ids = [tokenizer.get_vocab()[n] for n in NUMBERS]
    emb, emb0 = ordinal.get_input_embeddings().weight.detach(), plain.get_input_embeddings().weight.detach()
    part = emb[ids] - emb0[ids]
    cos = F.cosine_similarity
    assert cos(part[40], part[41], dim=0) > 0.9 and abs(cos(part[40], part[90], dim=0)) < 0.5
    others = torch.ones(len(emb), dtype=torch.bool)
    others[ids] = False
    assert torch.equal(emb[others], emb0[others])
    assert ordinal.get_output_embeddings().weight.data_ptr() == ordinal.get_input_embeddings().weight.data_ptr()
    # the place map starts as the numbers' map, for x and for y: a token's place points at the numbers naming it
    weight = ordinal.connector.position.weight.detach()
    half = weight.shape[1] // 2
    assert torch.equal(weight[:, :half], weight[:, half:]) and not torch.equal(weight, plain.connector.position.weight)
    for x in (0.125, 0.4, 0.85):
        place = weight[:, :half] @ fourier_positions(torch.tensor([[x]]))[0]
        assert abs(int((part @ place).argmax()) - round(100 * x)) <= 2


def test_only_for_a_fresh_lm_with_a_tokenizer(tokenizer, tmp_path):
    with pytest.raises(RegionLMError, match="model.ordinal_numbers"):
        model_with(tokenizer, True, lm_path=str(tmp_path))
    cfg = {"model": {"config": {"region_encoder": "text_coords", "vision_config": VISION, "text_config": TEXT},
                     "ordinal_numbers": True}, "data": {"source": "toy"}, "stages": [{"name": "s", "steps": 1, "lr": 1e-3, "trainable": ["connector"]}]}
    with pytest.raises(RegionLMError, match="model.ordinal_numbers"):
        build_model(config_from_dict(cfg))
