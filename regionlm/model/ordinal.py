"""Number tokens that know their value: an initialisation for a language model trained from scratch to write boxes.

Elysium's boxes are four numbers in [0, 100) written as text, one token each (tokenizer.NUMBERS). A fresh LM
starts with 100 unrelated embeddings for them and has to learn from the boxes alone that 42 lies between 41 and
43. ``init_ordinal_numbers`` adds to each number's embedding a part that varies smoothly with its value,
R @ fourier(n / 100) (with tied embeddings the output side gets it too), and, when the connector embeds its tokens'
places (``context_positions``), starts that map with the same R for x and for y: a context token's place and
the numbers that name it then point the same way from the first step. Only the initial weights change; the model
and its saved files are the usual ones.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .connectors import POSITION_FREQS, fourier_positions


def init_ordinal_numbers(model, number_ids: Sequence[int], seed: int = 0) -> None:
    """Add the value part to the embeddings of ``number_ids`` (the tokens of "0", "1", ..., in value order)."""
    emb = model.get_input_embeddings().weight
    values = torch.arange(len(number_ids), dtype=torch.float32) / 100
    features = fourier_positions(values[:, None])  # (n, 2F): |f|^2 = F
    scale = float(emb.detach().std())  # the LM's own initial scale, per entry
    g = torch.Generator().manual_seed(seed)
    proj = torch.randn(emb.shape[1], features.shape[1], generator=g) * (scale / math.sqrt(POSITION_FREQS))
    ids = torch.as_tensor(list(number_ids), dtype=torch.long)
    with torch.no_grad():
        part = (features @ proj.T).to(emb)
        emb[ids] += part
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != emb.data_ptr():  # untied: the output side as well
            out.weight[ids] += part.to(out.weight)
        if model.config.context_positions:
            model.connector.position.weight.copy_(torch.cat([proj, proj], dim=1).to(model.connector.position.weight))
