"""benchmarks/grounding_prior.py: the pick under given prior terms (log_prior's formula), and the whole run with a
tiny random model on a tiny validation split (features cached, the grid scored, the oracle on top)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from regionlm.model.grounding import Candidate, area_share, log_prior
from regionlm.model.tokenizer import train_tokenizer, world_corpus

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import grounding_prior  # noqa: E402
from test_geometry_probe import save_tiny  # noqa: E402


def test_pick_follows_the_log_prior_formula():
    big, small = np.zeros((2, 32, 32), bool), np.zeros((2, 32, 32), bool)
    big[:, :8, :8] = True  # 64 of 1024 pixels where seen
    small[0, 0, 0] = True  # 1 pixel, on one frame
    cands = [{"loglik": -4.0, "prior": 0.9, "area": area_share(big)},
             {"loglik": -2.0, "prior": 0.3, "area": area_share(small)},
             {"loglik": None, "prior": 1.0, "area": 0.5}]  # never visible: never picked
    assert area_share(small) == pytest.approx(1 / 1024)
    assert grounding_prior.pick(cands, 0.0, 0.0) == 1  # the words alone
    assert grounding_prior.pick(cands, 0.0, 0.01) == 0  # the fragment penalised: -2 + log(0.0977) < -4
    assert grounding_prior.pick(cands, 0.0, 0.0, model=False) == 0  # everything equal: the first
    assert grounding_prior.pick(cands, 3.0, 0.0) == 0  # -2 + 3 log 0.3 = -5.6 < -4 + 3 log 0.9 = -4.3
    assert grounding_prior.pick([cands[2]], 1.0, 0.01) is None
    joint = [dict(c, loglik_joint=j) for c, j in zip(cands, (-1.0, -2.0, None))]  # the other view mode's likelihood
    assert grounding_prior.pick(joint, 0.0, 0.0, views="joint") == 0 and grounding_prior.pick(joint, 0.0, 0.0) == 1
    # grounding.log_prior is the same formula with the shipped terms
    from regionlm.model import grounding

    for masks, prior in ((big, 0.9), (small, 0.3)):
        got = (grounding.PRIOR_WEIGHT * np.log(prior)
               + np.log(max(min(1.0, area_share(masks) / grounding.SMALL_AREA), 1e-3)))
        assert log_prior(Candidate(masks, prior)) == pytest.approx(got)


def _object(obj_id, colour, shape, size, boxes):
    return {"id": obj_id, "colour": colour, "shape": shape, "size": size,
            "frames": [{"box": b, "visibility": 0.0 if b is None else 1.0} for b in boxes]}


def test_outcome_names_what_the_pick_followed():
    left, right, top = [0, 0, 10, 10], [20, 0, 30, 10], [0, 20, 10, 30]  # xyxy
    target = _object(1, "red", "star", "small", [left, left, None])
    twin = _object(2, "red", "star", "small", [right, right, right])  # only motion or place tells it apart
    other = _object(3, "red", "star", "large", [top, top, top])
    objects = [target, twin, other]
    xywh = {"left": [0, 0, 10, 10], "right": [20, 0, 10, 10], "top": [0, 20, 10, 10]}
    out = grounding_prior.outcome
    assert out(target, objects, [xywh["left"]] * 2 + [None], (0, 1, 2), 90.0) == "the named object"
    assert out(target, objects, [xywh["right"]] * 3, (0, 1, 2), 90.0) == "a look-alike"
    assert out(target, objects, [xywh["top"]] * 3, (0, 1, 2), 90.0) == "another object"
    assert out(target, objects, [[40, 40, 5, 5]] * 3, (0, 1, 2), 90.0) == "no object"
    assert out(target, objects, None, (0, 1, 2), 90.0) == "no object"
    assert out(target, objects, [xywh["left"]] * 3, (0, 1, 2), 40.0) == "no track follows it"  # the pipeline's miss
    # a sequence starting on frame 1 is scored on frames 1 and 2 only: one frame of two on the target
    assert grounding_prior.follows([xywh["left"], None], objects, (1, 2)) == (1, 0.5)


def test_the_whole_run_writes_the_grid_and_caches_the_features(tmp_path, capsys):
    tokenizer = train_tokenizer(world_corpus(2), vocab_size=512)
    model = save_tiny(tmp_path / "m", tokenizer)
    args = ["--model", str(model), "--videos", "2", "--seed", "3", "--limit", "3", "--data-dir", str(tmp_path / "d"),
            "--out", str(tmp_path / "out")]
    assert grounding_prior.main(args) == 0
    result = json.loads((tmp_path / "out" / "grounding_prior.json").read_text())
    grid = result["grid"]
    assert result["sequences"] == 3
    assert len([r for r in grid if isinstance(r["weight"], float)]) == \
        2 * len(grounding_prior.WEIGHTS) * len(grounding_prior.SMALL_AREAS)  # views "each" and "joint"
    oracle = next(r for r in grid if r["weight"] == "oracle")
    assert all(r["auc"] <= oracle["auc"] + 1e-9 for r in grid)
    assert result["best"]["auc"] == max(r["auc"] for r in grid if isinstance(r["weight"], float))
    picks = result["picks"]  # every sequence has one outcome; the oracle is never below the pick
    assert sum(r["sequences"] for r in picks) == 3 and {r["picked"] for r in picks} <= set(grounding_prior.OUTCOMES)
    assert all(r["auc"] <= r["oracle_auc"] + 1e-9 for r in picks)
    features = json.loads((tmp_path / "out" / "features.json").read_text())
    assert [len(r["candidates"]) > 0 for r in features["rows"]] == [True] * 3
    assert all({"loglik", "loglik_joint"} <= set(c) for r in features["rows"] for c in r["candidates"])
    capsys.readouterr()
    assert grounding_prior.main(args) == 0  # a re-run reads the cache: no model asked
    assert "sequences," not in capsys.readouterr().err
    assert grounding_prior.main(args[:4] + ["--seed", "1"]) == 2
