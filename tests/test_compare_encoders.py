"""benchmarks/compare_encoders.py: the variants' configs (from scratch and on a shared backbone), and the backbone's
export into Hugging Face folders that the real path's loader (model.vision_path / lm_path) reads back exactly,
and the paired comparison of region MC against mask_pool."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

from regionlm.train.config import config_from_dict
from regionlm.train.trainer import build_model

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import compare_encoders as ce  # noqa: E402

BASE = yaml.safe_load((REPO / "configs" / "small.yaml").read_text())


def test_from_scratch_variant_is_the_first_stage_shortened(tmp_path):
    (tmp_path / "tok").mkdir()
    cfg = ce.variant_config(BASE, {"region_encoder": "roi_box"}, 3000, tmp_path / "tok")
    first = BASE["stages"][0]
    [stage] = cfg["stages"]
    assert stage["lr"] == first["lr"] and stage["steps"] == 3000
    assert stage["warmup"] == round(first["warmup"] * 3000 / sum(s["steps"] for s in BASE["stages"]))
    assert cfg["model"]["config"]["region_encoder"] == "roi_box"
    assert "vision_config" in cfg["model"]["config"] and "vision_path" not in cfg["model"]
    assert BASE["model"]["config"]["region_encoder"] == "mask_pool"  # the base is not changed
    config_from_dict(cfg)  # a valid training config


def test_backbone_variant_loads_the_parts_at_the_restart_rate(tmp_path):
    cfg = ce.variant_config(BASE, {"connector": "stc"}, 600, tmp_path / "tok", backbone=tmp_path / "parts")
    [stage] = cfg["stages"]
    assert stage["lr"] == ce.BACKBONE_LR == BASE["stages"][1]["lr"] and stage["steps"] == 600
    assert stage["warmup"] == 60  # BACKBONE_WARMUP, at most a tenth of the budget
    assert stage["trainable"] == BASE["stages"][0]["trainable"]
    assert cfg["model"]["vision_path"] == str(tmp_path / "parts" / "vision")
    assert cfg["model"]["lm_path"] == str(tmp_path / "parts" / "lm")
    assert "vision_config" not in cfg["model"]["config"] and "text_config" not in cfg["model"]["config"]
    assert cfg["model"]["config"]["connector"] == "stc"
    assert cfg["data"]["tasks"] == BASE["data"]["tasks"]  # variants train on the full mix


def test_backbone_trains_only_region_free_tasks(tmp_path):
    (tmp_path / "tok").mkdir()
    cfg = ce.backbone_config(BASE, 1200, tmp_path / "tok")
    assert set(cfg["data"]["tasks"]) == set(ce.REGION_FREE_TASKS) == {"video_qa", "rec", "rsot"}
    assert all(cfg["data"]["tasks"][t] == BASE["data"]["tasks"][t] for t in ce.REGION_FREE_TASKS)
    assert cfg["stages"][0]["steps"] == 1200 and cfg["stages"][0]["lr"] == BASE["stages"][0]["lr"]
    assert config_from_dict(cfg).data.workers == 0
    assert config_from_dict(ce.backbone_config(BASE, 1200, tmp_path / "tok", workers=14)).data.workers == 14


def test_exported_backbone_loads_back_into_a_variant_exactly(tmp_path):
    from regionlm.model import RegionLMConfig, RegionLMForConditionalGeneration

    vision = {"model_type": "siglip_vision_model", "vision_use_head": False, "image_size": 16, "patch_size": 8,
              "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    text = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64, "tie_word_embeddings": True}
    torch.manual_seed(0)
    trained = RegionLMForConditionalGeneration(RegionLMConfig(region_encoder="mask_pool", vision_config=vision,
                                                              text_config=text))
    trained.save_pretrained(tmp_path / "final")
    ce.export_backbone(tmp_path / "final", tmp_path / "parts")
    assert not (tmp_path / "parts.tmp").exists()

    base = {"model": {"config": {"region_encoder": "token_mark", "vision_config": vision, "text_config": text}},
            "data": {"source": "toy", "num_frames": 2},
            "stages": [{"name": "s", "steps": 8, "lr": 1e-3, "trainable": ["connector"]}]}
    cfg = ce.variant_config(base, {"region_encoder": "token_mark"}, 4, tmp_path / "tok", backbone=tmp_path / "parts")
    cfg.pop("tokenizer")  # the toy source needs none
    model = build_model(config_from_dict(cfg))
    for part in ("vision_tower", "language_model"):
        want, got = getattr(trained, part).state_dict(), getattr(model, part).state_dict()
        assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want), part
    assert model.config.region_encoder == "token_mark"


def test_a_results_folder_of_another_run_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "compare_encoders.json").write_text('{"budget": 30, "variants": {}}')
    monkeypatch.setattr(sys, "argv", ["compare_encoders.py", "--budget", "600", "--backbone-steps", "1200",
                                      "--out", str(tmp_path), "--only", "roi_box"])
    monkeypatch.setattr("default_model.ensure_split", lambda *a: tmp_path / "data")
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "tokenizer.json").write_text("{}")
    with pytest.raises(SystemExit) as err:
        ce.main()
    assert "--budget 30 --backbone-steps 0" in str(err.value) and "another --out" in str(err.value)


def test_paired_difference_and_its_interval():
    a = {f"q{i}": i % 2 == 0 for i in range(200)}  # right on half
    b = {f"q{i}": i % 4 == 0 for i in range(200)}  # right on a quarter, always where a is right too
    diff, low, high, n = ce.paired_difference(a, b)
    assert n == 200 and diff == pytest.approx(25.0) and low < 25.0 < high and low > 15
    assert ce.paired_difference(a, a)[:3] == (0.0, 0.0, 0.0)  # the same answers: no spread
    assert ce.paired_difference({"x": True}, {"y": True}) is None  # nothing shared


def test_the_table_gives_region_mc_against_mask_pool(tmp_path):
    for name, right in (("mask_pool", [True, True, False, False]), ("roi_box", [True, False, False, False])):
        folder = tmp_path / "evals" / name / "world-q"
        folder.mkdir(parents=True)
        samples = [{"id": f"q{i}", "correct": r} for i, r in enumerate(right)]
        (folder / "results.json").write_text(json.dumps({"per_sample": samples}))
    results = {n: {"what": n, "world-q": {"overall": v}} for n, v in (("mask_pool", 50.0), ("roi_box", 25.0))}
    rows = ce.markdown(results, ["mask_pool", "roi_box"], tmp_path).splitlines()
    assert "region MC vs mask_pool (95%)" in rows[0] and "swap unchanged" in rows[0]
    assert rows[2].split(" | ")[7] == "-" and rows[3].split(" | ")[7].startswith("-25.0 [")


def test_claims_are_judged_by_their_paired_interval_over_every_seed(tmp_path):
    def answers(out, name, bench, right):
        folder = out / "evals" / name / bench
        folder.mkdir(parents=True)
        samples = [{"id": f"q{i}", "correct": r} for i, r in enumerate(right)]
        (folder / "results.json").write_text(json.dumps({"per_sample": samples}))

    n, one, two = 300, tmp_path / "seed0", tmp_path / "seed1"
    for out in (one, two):
        answers(out, "mask_pool", "world-q", [i % 2 == 0 for i in range(n)])
        answers(out, "mask_pool-nomerge", "world-q", [i % 2 == 0 for i in range(n)])  # the same: no difference
        answers(out, "mask_pool", "world-vqa", [i % 5 == 0 for i in range(n)])
        answers(out, "object_tokens", "world-vqa", [False] * n)                      # always worse: reversed
    answers(one, "roi_box", "world-q", [i % 4 == 0 for i in range(n)])   # worse by 25 points in one seed,
    answers(two, "roi_box", "world-q", [i % 2 == 1 for i in range(n)])   # by 0 in the other (other questions)

    def rows(outs):
        return {line.split(" | ")[1]: line.split(" | ") for line in ce.claims_markdown(outs).splitlines()[2:]}

    single = rows([one])
    assert set(single) == {"mask_pool - roi_box", "mask_pool - mask_pool-nomerge", "object_tokens - mask_pool"}
    assert single["mask_pool - roi_box"][3] == "+25.0" and single["mask_pool - roi_box"][6] == "holds (1 seed) |"
    assert single["mask_pool - mask_pool-nomerge"][6] == "not shown |"
    assert single["object_tokens - mask_pool"][2] == "world-vqa"
    assert single["object_tokens - mask_pool"][6] == "reversed (1 seed) |"
    both = rows([one, two])
    assert both["mask_pool - roi_box"][3] == "+25.0 / +0.0" and both["mask_pool - roi_box"][5] == "600"
    assert both["mask_pool - roi_box"][4].startswith("+12.5 [")
    assert both["mask_pool - roi_box"][6] == "not shown |"  # pooled above 0, but one seed shows nothing
    assert both["object_tokens - mask_pool"][6] == "reversed |"
    assert ce.claims_markdown([tmp_path / "nothing"]) == ""


def test_run_stats_add_up_every_session_of_a_run(tmp_path):
    records = [{"step": 20, "loss": 2.0, "samples_per_s": 32.0}, {"step": 40, "loss": 1.0, "samples_per_s": 64.0}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    stats = ce.run_stats(tmp_path, batch_size=16)
    assert stats == {"last_loss": 1.0, "samples_per_s": 48.0, "train_seconds": 15.0}  # 20*16/32 + 20*16/64
    assert ce.run_stats(tmp_path / "none", 16)["last_loss"] is None


def test_swap_answers_are_read_only_where_a_look_alike_was_asked(tmp_path):
    folder = tmp_path / "evals" / "token_mark" / "world-q"
    folder.mkdir(parents=True)
    samples = [{"id": "q0", "correct": True, "choice": "A", "swap_choice": "A", "swap_follows": False},
               {"id": "q1", "correct": False, "choice": "C"},
               {"id": "q2", "correct": False, "choice": "B", "swap_choice": "D", "swap_follows": True}]
    (folder / "results.json").write_text(json.dumps({"per_sample": samples}))
    assert ce.mc_answers(tmp_path, "token_mark") == {"q0": True, "q1": False, "q2": False}
    assert ce.mc_answers(tmp_path, "token_mark", key="swap_follows") == {"q0": False, "q2": True}
    assert ce.swap_unchanged(tmp_path, "token_mark") == "50.0"  # q0 kept its letter, q2 changed it
    assert ce.swap_unchanged(tmp_path, "roi_box") == "-"
