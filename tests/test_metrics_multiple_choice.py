import pytest

from regionlm.eval.metrics.multiple_choice import (
    QUESTION_TYPES,
    build_mc_prompt,
    count_multiple_choice,
    extract_choice,
    extract_choice_lenient,
    gt_letter,
    score_multiple_choice,
)


def test_prompt_matches_official_form():
    q = "What is <region> doing before <region> arrives?"
    opts = ["(A) Running", "(B) Sitting", "(C) Eating", "(D) Sleeping"]
    assert build_mc_prompt(q, opts) == (
        "What is [<region>] doing before [<region>] arrives? (A) Running (B) Sitting (C) Eating (D) Sleeping"
        ". Answer with the option's letter from the given choices directly."
    )


@pytest.mark.parametrize(
    "pred, expected",
    [
        ("(B)", "B"),
        ("(b)", "("),  # case-sensitive regexes: falls to the first character
        ("B) foo", "B"),
        ("The answer is C", "T"),
        ("The answer is (C) because", "C"),
        ("I pick A) no, (D)", "D"),  # \(([A-Z])\) has priority over ([A-Z])\)
        ("A.", "A"),
        ("  A.", " "),  # no stripping, as the official script
        (".A", "A"),  # dots removed before taking the first character
        ("d", "d"),
        ("", None),
        (".", None),
        (None, None),
    ],
)
def test_extract_choice_official_quirks(pred, expected):
    assert extract_choice(pred) == expected


def _rec(answer, pred, tp="Basic Questions"):
    return {"Answer": answer, "pred": pred, "type": tp}


def test_scoring_quirks():
    recs = [
        _rec("(B) Sitting", "(b)"),  # wrong
        _rec("(B) Sitting", "B) foo"),  # right
        _rec("(C) Eating", "The answer is C"),  # 'T' -> wrong
        _rec("(A) Running", ""),  # wrong, no crash
        _rec("(A) Running", "  A."),  # ' ' -> wrong
        _rec("(D) Sleeping", "d"),  # right: only the final comparison ignores case
    ]
    assert score_multiple_choice(recs) == {"Basic Questions": pytest.approx(200 / 6), "overall": pytest.approx(200 / 6)}


def test_per_type_and_micro_overall():
    recs = (
        [_rec("(A) x", "(A)", "Basic Questions")] * 3
        + [_rec("(A) x", "(B)", "Basic Questions")]
        + [_rec("(C) x", "C", "Future Predictions")]
        + [_rec("(C) x", "B", "Reasoning Questions")] * 2
        + [_rec("(A) x", "A", "Sequential Questions"), _rec("(A) x", "A", "Relationship Questions")]
    )
    acc = score_multiple_choice(recs)
    assert list(acc) == list(QUESTION_TYPES) + ["overall"]
    assert acc["Basic Questions"] == 75.0
    assert acc["Future Predictions"] == 100.0
    assert acc["Reasoning Questions"] == 0.0
    assert acc["overall"] == pytest.approx(100 * 6 / 9)  # micro, not the mean of the types
    assert count_multiple_choice(recs)["Basic Questions"] == (3, 4)


def test_gt_without_letter_and_missing_keys():
    assert gt_letter("The answer is (C) Eating") == "C"
    with pytest.raises(ValueError, match="no '\\(X\\)'"):
        score_multiple_choice([_rec("Eating", "C")])
    with pytest.raises(ValueError, match="missing key 'pred'"):
        score_multiple_choice([{"Answer": "(A)", "type": "Basic Questions"}])
    with pytest.raises(ValueError, match="no records"):
        score_multiple_choice([])


def test_lenient_is_an_option_only():
    recs = [_rec("(B) x", "(b)"), _rec("(C) x", "The answer is C"), _rec("(A) x", "  A."), _rec("(A) x", "A dog")]
    assert score_multiple_choice(recs)["overall"] == 25.0  # only "A dog" -> 'A' is right officially
    assert score_multiple_choice(recs, lenient=True)["overall"] == 75.0
    assert extract_choice_lenient("B: sitting") == "B"
    assert extract_choice_lenient("the answer is a dog") is None
    assert extract_choice_lenient("") is None
