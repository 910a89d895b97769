"""The description loop guard (regionlm.model.loop_guard): no span of >= 4 tokens is written three times in a row,
a span written twice is allowed, and the option reaches generation for caption tasks only."""

from __future__ import annotations

import pytest
import torch

from regionlm.model.loop_guard import NoTripleRepeat


def has_triple(seq: list, min_span: int = 4) -> bool:
    n = len(seq)
    return any(seq[i:i + k] == seq[i + k:i + 2 * k] == seq[i + 2 * k:i + 3 * k]
               for k in range(min_span, n // 3 + 1) for i in range(n - 3 * k + 1))


def test_the_start_of_a_third_copy_is_banned():
    guard = NoTripleRepeat()
    assert guard.banned(torch.tensor([[9, 1, 2, 3, 4, 1, 2, 3, 4]])) == [{1}]
    # every rotation of a loop is a span written twice: the token that would go on with it is banned
    assert guard.banned(torch.tensor([[2, 3, 4, 1, 2, 3, 4, 1]])) == [{2}]
    # rows are independent; short spans, a single copy and no repetition ban nothing
    ids = torch.tensor([[0, 0, 1, 2, 1, 2, 1, 2], [5, 6, 7, 8, 9, 5, 6, 7], [1, 2, 3, 4, 1, 2, 3, 4]])
    assert guard.banned(ids) == [set(), set(), {1}]
    # a short period is caught once it fills two copies of a 4-token span
    assert guard.banned(torch.tensor([[1, 2, 1, 2, 1, 2, 1, 2]])) == [{1}]
    assert guard.banned(torch.zeros((2, 0), dtype=torch.long)) == [set(), set()]


def test_a_looping_decoder_is_stopped_and_a_doubled_clause_kept():
    """Greedy decoding of a scorer that always prefers to go round 1, 2, ..., 6 (second choice: the end, 0)."""
    guard = NoTripleRepeat()
    seq: list = []
    for _ in range(40):
        scores = torch.zeros(1, 8)
        scores[0, (seq[-1] % 6 + 1) if seq else 1] = 2.0
        scores[0, 0] = 1.0
        scores = guard(torch.tensor([seq], dtype=torch.long).reshape(1, -1), scores)
        seq.append(int(scores.argmax()))
        if seq[-1] == 0:
            break
    assert seq == [1, 2, 3, 4, 5, 6] * 2 + [0]  # twice is allowed, the third copy never begins
    assert not has_triple(seq)


def test_scores_of_banned_tokens_only_become_minus_infinity():
    scores = torch.zeros(2, 6)
    out = NoTripleRepeat()(torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4], [1, 2, 3, 4, 5, 1, 2, 3]]), scores.clone())
    assert out[0, 1] == float("-inf") and torch.isfinite(out[0, [0, 2, 3, 4, 5]]).all()
    assert torch.isfinite(out[1]).all()


def test_bad_spans_are_refused():
    with pytest.raises(ValueError):
        NoTripleRepeat(min_span=5, max_span=4)
