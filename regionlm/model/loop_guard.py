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


# Free answers (``ask`` without options) are decoded greedily and without the ban above: a span said three times
# can be right there ("very, very, very"), and boxes repeat. What no answer needs is a loop that runs until the
# token budget ends, which is how a model answers a video unlike its training data (the embedded model on a real
# mp4: "... collides collides collides ... 1111111111"). So decoding stops once the answer ends in a loop: a span
# of 1..MAX_SPAN tokens written at least three times in a row over at least LOOP_TOKENS tokens (a single token
# eight times: Qwen2 writes numbers digit by digit, and "10000000" is legitimate), and the loop is cut back to
# its first copy.
LOOP_TOKENS = 8


def loop_tail(ids, max_span: int = MAX_SPAN, min_tokens: int = LOOP_TOKENS) -> "tuple[int, int] | None":
    """(span length, copies) of the shortest span that the token list ``ids`` ends with at least three times in
    a row covering at least ``min_tokens`` tokens (all the copies counted), or None."""
    ids = list(ids)
    for k in range(1, min(max_span, len(ids) // 3) + 1):
        span, copies = ids[-k:], 1
        while len(ids) >= (copies + 1) * k and ids[-(copies + 1) * k:-copies * k] == span:
            copies += 1
        if copies >= 3 and copies * k >= min_tokens:
            return k, copies
    return None


def cut_loop(ids, ignore=()) -> "tuple[list, bool]":
    """``ids`` (a list; trailing ``ignore`` ids such as end-of-turn / padding dropped first) with a final loop
    (loop_tail) cut back to its first copy, and whether there was one."""
    ids = list(ids)
    while ids and ids[-1] in ignore:
        ids.pop()
    found = loop_tail(ids)
    if found is None:
        return ids, False
    k, copies = found
    return ids[:len(ids) - (copies - 1) * k], True


class StopOnLoop:
    """A transformers StoppingCriteria: a row is done once its ids end in a loop (loop_tail). Decoding from
    inputs_embeds, as RegionLM does, the ids that generate passes are the new tokens only."""

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        return torch.tensor([loop_tail(r) is not None for r in input_ids.tolist()], dtype=torch.bool,
                            device=input_ids.device)
