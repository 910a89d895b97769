"""Caption metrics against pycocoevalcap's own scorers.

JVM starts are expensive (~7 s each): the module fixture runs one evaluation (one tokenizer JVM +
one METEOR JVM) and the reference METEOR runs once more; everything else is pure Python.
"""

import logging
import shutil

import pytest

pytest.importorskip("pycocoevalcap")

from regionlm.eval.metrics import captions  # noqa: E402
from regionlm.eval.metrics.captions import evaluate_captions, spice_available  # noqa: E402
from regionlm.eval.metrics.ptb_tokenize import ptb_tokenize_text  # noqa: E402

HAVE_JAVA = shutil.which("java") is not None
needs_java = pytest.mark.skipif(not HAVE_JAVA, reason="Java is not installed")

# 20 hand-written region descriptions: id -> (references, candidate)
SETS = {
    "v01_o1": (["A man in a blue shirt is walking his dog in the park.",
                "A person walks a dog along a path in the park."],
               "A man walks his dog through the park."),
    "v02_o1": (["The woman (on the left) picks up a red cup, then drinks from it.",
                "A woman lifts a red mug and takes a sip."],
               "The woman picks up a cup and drinks."),
    "v03_o2": (["Two kids are playing soccer on a grassy field; one of them kicks the ball.",
                "Children play football on the grass."],
               "Two children kick a ball on a field."),
    "v04_o1": (["The car drives from the left side of the frame to the right side.",
                "A silver car moves left to right across the road."],
               "A car drives from left to right."),
    "v05_o1": (["A cat jumps onto the table and knocks over a glass!",
                "The cat leaps on the table, knocking a glass over."],
               "A cat jumps on a table."),
    "v06_o3": (["The dog's tail wags while it's running after the frisbee.",
                "A dog chases a frisbee, wagging its tail."],
               "The dog runs after a frisbee and wags its tail."),
    "v07_o1": (["A person wearing a white hat -- possibly a chef -- stirs the pot.",
                "A cook in a chef's hat stirs a large pot."],
               "A chef stirs a pot on the stove."),
    "v08_o1": (["The object moves quickly: first up, then down.",
                "It goes up and then comes back down fast."],
               "The object moves up and down."),
    "v09_o2": (["There are 3 people, 2 dogs and 1 cat in the scene.",
                "Three people stand with two dogs and a cat."],
               "Three people and two dogs are in the scene."),
    "v10_o1": (["The bird flies away at the end of the video...",
                "A small bird takes off and leaves the frame."],
               "The bird flies away."),
    "v11_o1": (["A white truck, parked near the building, doesn't move.",
                "The white truck stays parked beside the building."],
               "A white truck is parked and doesn't move."),
    "v12_o1": (["The man says \"hello\" to the woman and shakes her hand.",
                "A man greets a woman with a handshake."],
               "A man shakes hands with a woman."),
    "v13_o2": (["It's a sunny day; the children can't stop laughing.",
                "Kids laugh outside on a bright day."],
               "The children are laughing in the sun."),
    "v14_o1": (["A black-and-white cat sits on a 2-meter-high wall.",
                "A black and white cat is sitting on top of a wall."],
               "A black-and-white cat sits on a wall."),
    "v15_o1": (["The player in the #10 jersey scores a goal at 5:30.",
                "Number 10 scores a goal."],
               "A player scores a goal."),
    "v16_o1": (["The boy in the red jacket rides his bike down the hill.",
                "A boy on a bicycle goes downhill wearing a red jacket."],
               "A boy in a red jacket rides a bike down a hill."),
    "v17_o4": (["The object [region] is a brown horse grazing in a field.",
                "A brown horse eats grass in a meadow."],
               "A brown horse grazes in the field."),
    "v18_o1": (["Mr. Smith, an elderly man in a grey coat, reads a newspaper on a bench.",
                "An old man sits on a bench reading the paper."],
               "An old man reads a newspaper on a bench."),
    "v19_o1": (["The girl's ponytail swings as she runs toward the camera.",
                "A girl runs to the camera, her ponytail swinging."],
               "A girl runs toward the camera."),
    "v20_o2": (["At 5 p.m. the ball rolls off the table and bounces twice.",
                "A ball falls from the table and bounces two times."],
               "The ball rolls off the table and bounces."),
}
REFS = {k: v[0] for k, v in SETS.items()}
CANDS = {k: v[1] for k, v in SETS.items()}


@pytest.fixture(scope="module")
def java_result():
    if not HAVE_JAVA:
        pytest.skip("Java is not installed")
    return evaluate_captions(REFS, CANDS)


def _reference_scores(gts, res):
    """pycocoevalcap's pure-Python scorers called directly."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out = {f"Bleu_{n + 1}": b for n, b in enumerate(bleu)}
    out["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    out["CIDEr"] = Cider().compute_score(gts, res)[0]
    return out


@needs_java
def test_java_pipeline_equals_pycocoevalcap_scorers(java_result):
    # one test uses the (expensive) fixture, so that pytest-xdist never runs it twice
    from pycocoevalcap.meteor.meteor import Meteor

    r = java_result
    assert r["tokenizer"] == "ptb-java" and r["meteor_available"] and r["notices"] == []
    gts, res = r["tokenized"]["gts"], r["tokenized"]["res"]
    ref = _reference_scores(gts, res)
    meteor = Meteor()
    try:
        ref["METEOR"], _ = meteor.compute_score(gts, res)
    finally:
        captions._close_meteor(meteor)
    for key, value in ref.items():
        assert r["raw"][key] == pytest.approx(value, abs=1e-9), key
    # the papers' x100 scale
    for key, raw in [("bleu1", "Bleu_1"), ("bleu2", "Bleu_2"), ("bleu3", "Bleu_3"), ("bleu4", "Bleu_4"),
                     ("meteor", "METEOR"), ("rouge_l", "ROUGE_L"), ("cider", "CIDEr")]:
        assert r[key] == pytest.approx(100 * ref[raw], abs=1e-9), key
    assert 0 < r["cider"] < 1000 and r["n"] == 20
    # the pure-Python tokenizer gives exactly the PTB tokens on these 20 sets
    for k, (refs, cand) in SETS.items():
        assert [ptb_tokenize_text(x) for x in refs] == gts[k], k
        assert [ptb_tokenize_text(cand)] == res[k], k


def test_without_java_notice_python_tokens_and_no_meteor(monkeypatch, caplog):
    monkeypatch.setattr(captions.shutil, "which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger=captions.__name__):
        r = evaluate_captions(REFS, CANDS)
    assert r["tokenizer"] == "ptb-python-approx"
    assert r["meteor"] is None and r["raw"]["METEOR"] is None and not r["meteor_available"]
    assert "Java not found" in r["notices"][0] and "METEOR is unavailable" in r["notices"][0]
    assert "Java not found" in caplog.text and "pure-Python PTB tokenizer" in caplog.text
    gts, res = r["tokenized"]["gts"], r["tokenized"]["res"]
    assert gts["v02_o1"][0] == "the woman -lrb- on the left -rrb- picks up a red cup then drinks from it"
    for key, value in _reference_scores(gts, res).items():
        assert r["raw"][key] == pytest.approx(value, abs=1e-9), key


def test_jvm_failure_falls_back(monkeypatch):
    def boom(_):
        raise RuntimeError("JVM crashed")

    monkeypatch.setattr(captions, "_java_available", lambda: True)
    monkeypatch.setattr(captions, "_tokenize_java", boom)
    r = evaluate_captions({1: ["a dog runs"], 2: ["a cat sleeps"]}, {1: "a dog runs", 2: "a dog sleeps"})
    assert r["tokenizer"] == "ptb-python-approx" and r["meteor"] is None
    assert "JVM failed (RuntimeError: JVM crashed)" in r["notices"][0]


def test_refuses_single_sample_and_bad_input():
    with pytest.raises(ValueError, match="at least 2 samples.*CIDEr"):
        evaluate_captions({1: ["a dog"]}, {1: "a dog"}, use_java=False)
    with pytest.raises(ValueError, match="same ids"):
        evaluate_captions({1: ["a"], 2: ["b"]}, {1: "a", 3: "b"}, use_java=False)
    with pytest.raises(ValueError, match="non-empty list"):
        evaluate_captions({1: [], 2: ["b"]}, {1: "a", 2: "b"}, use_java=False)


def test_spice_needs_jars():
    if spice_available():
        pytest.skip("SPICE jars are installed here")
    with pytest.raises(RuntimeError, match="SPICE needs the Stanford CoreNLP"):
        evaluate_captions(REFS, CANDS, spice=True)


def test_forced_python_tokenizer_has_no_notice():
    r = evaluate_captions(REFS, CANDS, use_java=False)
    assert r["tokenizer"] == "ptb-python-approx" and r["notices"] == [] and r["meteor"] is None
    assert r["cider"] == pytest.approx(100 * r["raw"]["CIDEr"])


# Java PTBTokenizer (CoreNLP 3.4.1, -preserveLines -lowerCase) outputs, punctuation dropped,
# recorded from the jar that pycocoevalcap 1.2 ships.
AGREES = [
    ("A man (in a red shirt) is riding a bike.", "a man -lrb- in a red shirt -rrb- is riding a bike"),
    ("Don't stop; it's the dog's ball, isn't it? I'm here.", "do n't stop it 's the dog 's ball is n't it i 'm here"),
    ("CAN'T cannot won't gonna", "ca n't can not wo n't gon na"),
    ('"Hello," she said. \'Quoted\' text.', "hello she said quoted text"),
    ("The U.S. is big. Mr. Smith at 3.5 p.m. on Jan. 5", "the u.s. is big mr. smith at 3.5 p.m. on jan. 5"),
    ("1,000 people paid $5.50 for 50% off... and/or a&b [x] {y}",
     "1,000 people paid $ 5.50 for 50 % off and/or a & b -lsb- x -rsb- -lcb- y -rcb-"),
    ("black-and-white dog -- running - fast", "black-and-white dog running fast"),
    ("Wait!! Really?! ok... yes", "wait !! really ?! ok yes"),
    ("i said no. walks to st. No. 5", "i said no walks to st. no. 5"),
    ("it.The end, hello,world 2,3 a:b 10:30", "it.the end hello world 2,3 a b 10:30"),
    ("the cats' toys and the boss's desk", "the cats toys and the boss 's desk"),
    ("the man smiles :)", "the man smiles :-rrb-"),
    ("\u201cCurly\u201d quotes \u2014 dash \u2026", "curly quotes dash"),
    ("approx. 3", "approx 3"),
    ("", ""),
]
# Documented differences: (text, Java, Python approximation)
DIFFERS = [
    ("it is 3.5m tall", "it is 3.5 m tall", "it is 3.5m tall"),
    ("the bird's-eye view", "the bird 's eye view", "the bird's-eye view"),
    ("y'all", "y' all", "y'all"),
    ("approx., then", "approx. then", "approx then"),
]


@pytest.mark.parametrize("text, java", AGREES)
def test_python_tokenizer_matches_recorded_java_output(text, java):
    assert ptb_tokenize_text(text) == java


@pytest.mark.parametrize("text, java, python", DIFFERS)
def test_python_tokenizer_known_differences(text, java, python):
    assert ptb_tokenize_text(text) == python
