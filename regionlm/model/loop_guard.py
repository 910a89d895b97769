"""A decoding constraint against description loops: no span of text is written three times in a row.

A small model's beam search sometimes falls into a loop ("then it collides with the yellow ring, then it collides
with the yellow ring, ..." until the token budget ends). RegionWorld's references repeat a clause at most twice in
a row (10 of the 804 test descriptions, never three times), so the guard bans only the token that would begin a
third consecutive copy of a span of MIN_SPAN..MAX_SPAN tokens; the model must then end the sentence or say
something else. Unlike ``no_repeat_ngram_size`` it leaves a span said twice alone ("bounces off the top wall, then
it bounces off the top wall" happens). Used for descriptions and referring expressions only: box answers repeat
legitimately (a still object keeps its box).
"""

from __future__ import annotations

import torch

MIN_SPAN, MAX_SPAN = 4, 32


class NoTripleRepeat:
    """A transformers LogitsProcessor: for every row whose ids end with a span X written twice (X X, len(X) in
    [min_span, max_span]), the first token of X gets -inf."""

    def __init__(self, min_span: int = MIN_SPAN, max_span: int = MAX_SPAN):
        if not 1 <= min_span <= max_span:
            raise ValueError(f"need 1 <= min_span <= max_span, got {min_span}, {max_span}")
        self.min_span, self.max_span = min_span, max_span

    def banned(self, input_ids: torch.LongTensor) -> list[set]:
        """The tokens each row may not write next."""
        rows, length = input_ids.shape
        out = [set() for _ in range(rows)]
        for k in range(self.min_span, min(self.max_span, length // 2) + 1):
            twice = (input_ids[:, -2 * k:-k] == input_ids[:, -k:]).all(dim=1)
            for r in twice.nonzero().flatten().tolist():
                out[r].add(int(input_ids[r, -k]))
        return out

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for r, tokens in enumerate(self.banned(input_ids)):
            if tokens:
                scores[r, list(tokens)] = float("-inf")
        return scores
