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


# ------------------------------------------------------------------ free answers: stop at a loop, keep one copy

def test_loop_tail_finds_the_shortest_span_that_loops_over_enough_tokens():
    from regionlm.model.loop_guard import loop_tail

    assert loop_tail([5] + [1] * 8) == (1, 8)  # one token eight times
    assert loop_tail([5] + [1] * 7) is None  # seven: a number such as 10000000 is written digit by digit
    assert loop_tail([1, 2] * 4) == (2, 4) and loop_tail([1, 2] * 3) is None  # 6 tokens: not yet
    assert loop_tail([9, 1, 2, 3] * 3) == (4, 3)  # three copies of a longer span are enough
    assert loop_tail([1, 2, 3, 4] * 2) is None  # twice is allowed
    assert loop_tail([1, 2, 3, 4] * 3 + [7]) is None  # the loop must be at the end
    assert loop_tail([]) is None


def test_cut_loop_keeps_the_first_copy_and_drops_trailing_end_tokens():
    from regionlm.model.loop_guard import cut_loop

    assert cut_loop([7, 8] + [3] * 9) == ([7, 8, 3], True)
    assert cut_loop([7] + [1, 2, 3] * 4 + [0, 0], ignore={0}) == ([7, 1, 2, 3], True)
    assert cut_loop([7, 1, 2, 1, 2, 0], ignore={0}) == ([7, 1, 2, 1, 2], False)


def test_transformers_generate_stops_each_looping_row_on_its_own():
    """A real (tiny) Qwen2 decoding from inputs_embeds with StopOnLoop: a logits processor makes row 0 cycle
    through three tokens and row 1 count up without repeating; row 0 stops after three copies, row 1 runs on."""
    from transformers import LogitsProcessorList, Qwen2Config, Qwen2ForCausalLM, StoppingCriteriaList

    from regionlm.model.loop_guard import StopOnLoop

    torch.manual_seed(0)
    lm = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1)).eval()

    def steer(input_ids, scores):
        forced = scores.new_full(scores.shape, float("-inf"))
        n = input_ids.shape[1]
        forced[0, 10 + n % 3] = 0.0  # 10, 11, 12, 10, 11, 12, ...
        forced[1, 20 + n] = 0.0  # 20, 21, 22, ...
        return forced

    out = lm.generate(inputs_embeds=torch.randn(2, 3, 32), attention_mask=torch.ones(2, 3, dtype=torch.long),
                      max_new_tokens=20, do_sample=False, logits_processor=LogitsProcessorList([steer]),
                      stopping_criteria=StoppingCriteriaList([StopOnLoop()]), pad_token_id=0, eos_token_id=63)
    assert out[1].tolist() == list(range(20, 40))
    assert out[0].tolist()[:9] == [10, 11, 12] * 3 and set(out[0].tolist()[9:]) <= {0}
