"""The trainer: config errors, freezing per stage, learning (a learnable stand-in and RegionWorld), exact resume,
checkpoint pieces, DDP and FSDP2 with 2 CPU processes (gloo), LoRA, the CLI."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from regionlm.cli import main as cli_main
from regionlm.errors import RegionLMError
from regionlm.train.checkpoint import (join_optimizer_state, latest_checkpoint, list_checkpoints,
                                       load_optimizer_state_by_name, optimizer_state_by_name, pack_rng,
                                       split_optimizer_state, unpack_rng)
from regionlm.train.config import config_from_dict, load_config
from regionlm.train.trainer import (DATA_SOURCES, Trainer, apply_lora, build_model, lr_at, part_of,
                                    set_trainable)

REPO = Path(__file__).resolve().parents[1]
VISION = {"model_type": "siglip_vision_model", "vision_use_head": False, "image_size": 16, "patch_size": 8,
          "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
TEXT = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64, "tie_word_embeddings": True}


@pytest.fixture(autouse=True)
def one_thread():
    """The configs ask for 1 thread (fast for tiny models on a shared 2-core machine); put torch's back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def toy(out, **over) -> dict:
    """A tiny model on the toy source; ``over`` replaces top-level keys."""
    cfg = {"model": {"config": {"region_encoder": "text_coords", "connector": "pool", "vision_config": dict(VISION),
                                "text_config": dict(TEXT)}},
           "data": {"source": "toy", "num_frames": 2},
           "stages": [{"name": "align", "steps": 4, "lr": 3e-3, "warmup": 1, "trainable": ["connector"]},
                      {"name": "tune", "steps": 8, "lr": 3e-3, "warmup": 2,
                       "trainable": ["connector", "language_model", "vision_tower"]}],
           "batch_size": 4, "grad_accum": 2, "log_every": 2, "checkpoint_every": 5, "keep_checkpoints": 10,
           "cpu_threads": 1, "out_dir": str(out)}
    cfg.update(over)
    return cfg


def run(cfg: dict, **kw) -> dict:
    return Trainer(config_from_dict(cfg), progress=False, **kw).run()


def weights(path) -> dict:
    return load_file(str(Path(path) / "model.safetensors"))


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


# ------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize("data, words", [
    ({"bogus": 1}, ["unknown key 'bogus'"]),
    ({"model": {"config": {}, "vision": "x"}}, ["unknown key 'model.vision'"]),
    ({"model": {"config": {"conector": "pool"}}}, ["'model.config.conector'", "RegionLMConfig"]),
    ({"data": {"source": "toy", "frames": 4}}, ["unknown key 'data.frames'"]),
    ({"batch_size": "ten"}, ["batch_size must be int"]),
    ({"batch_size": 0}, ["batch_size must be >= 1"]),
    ({"stages": [{"name": "s", "steps": 3, "trainable": ["decoder"]}]}, ["stages[0] (s)", "trainable"]),
    ({"stages": [{"name": "s", "steps": 3, "trainable": ["lora"]}]}, ["no lora section"]),
    ({"stages": [{"name": "s", "steps": 3, "warmup": 5, "trainable": ["connector"]}]}, ["warmup"]),
    ({"stages": [{"name": "s", "steps": 3, "trainable": ["connector"], "lr_max": 1}]}, ["'stages[0].lr_max'"]),
    ({"stages": []}, ["at least one stage"]),
    ({"precision": "fp8"}, ["precision must be one of"]),
    ({"lora": {"r": 4, "rank": 4}}, ["unknown key 'lora.rank'"]),
    ({"model": {"init_from": "/no/such/dir"}}, ["model.init_from", "not a folder"]),
])
def test_config_errors_name_the_key_and_the_file(tmp_path, data, words):
    cfg = toy(tmp_path / "run")
    for key, value in data.items():
        cfg[key] = {**cfg[key], **value} if key in ("data",) and isinstance(value, dict) else value
    path = write_yaml(tmp_path / "train.yaml", cfg)
    with pytest.raises(RegionLMError) as err:
        load_config(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    for word in words:
        assert word in msg


def test_config_file_errors(tmp_path):
    bad = write_yaml(tmp_path / "bad.yaml", "stages: [\n  {name: a, steps: 3\n")
    with pytest.raises(RegionLMError, match=r"bad.yaml: invalid YAML \(line \d+, column \d+\)"):
        load_config(bad)
    with pytest.raises(RegionLMError, match="empty"):
        load_config(write_yaml(tmp_path / "empty.yaml", ""))
    with pytest.raises(RegionLMError, match="missing key 'stages'"):
        load_config(write_yaml(tmp_path / "nostages.yaml", {"batch_size": 2}))
    with pytest.raises(RegionLMError, match="is not a file"):
        load_config(tmp_path / "nope.yaml")
    good = load_config(write_yaml(tmp_path / "good.yaml", toy(tmp_path / "run")))
    assert good.total_steps == 12 and good.stage_at(4) == (1, 0) and good.stage_at(3) == (0, 3)
    assert isinstance(good.stages[0].lr, float) and good.model.config["connector"] == "pool"


def test_the_shipped_tiny_config_loads():
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    assert cfg.data.source == "world" and len(cfg.stages) >= 2
    assert cfg.data.source in DATA_SOURCES


def test_cli_turns_config_errors_into_one_line_and_exit_2(tmp_path, capsys):
    path = write_yaml(tmp_path / "t.yaml", {**toy(tmp_path / "run"), "learning_rate": 1})
    assert cli_main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'learning_rate'" in err


# ------------------------------------------------------------------------------------------------ schedule / freezing


def test_lr_schedule_warmup_then_cosine():
    stage = config_from_dict(toy("x")).stages[1]  # steps 8, warmup 2, lr 3e-3, min ratio 0.1
    lrs = [lr_at(stage, j) for j in range(stage.steps)]
    assert lrs[0] == pytest.approx(1.5e-3) and lrs[1] == pytest.approx(3e-3)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))  # non-increasing after warmup
    assert lr_at(stage, stage.steps) == pytest.approx(3e-4)


def test_parts_and_set_trainable():
    cfg = config_from_dict(toy("x"))
    model = build_model(cfg)
    parts = {part_of(n) for n, _ in model.named_parameters()}
    assert parts == {"vision_tower", "connector", "language_model"}  # text_coords has no weights
    n = set_trainable(model, ["connector"])
    assert n == sum(p.numel() for p in model.connector.parameters())
    assert all(p.requires_grad == n_.startswith("connector.") for n_, p in model.named_parameters())


def test_init_from_may_add_a_part_but_not_drop_one(tmp_path):
    """model.config next to init_from switches on an option that adds a part: every saved weight is kept and the
    new part starts from its init; an option that would drop weights is refused."""
    from regionlm.model import RegionLMForConditionalGeneration

    base = toy("x")
    base["model"]["config"].update(region_encoder="mask_pool", pixel_recon_alpha=1.0)
    saved = build_model(config_from_dict(base))
    saved.save_pretrained(tmp_path / "saved")
    grown = build_model(config_from_dict(toy("x", model={"init_from": str(tmp_path / "saved"),
                                                         "config": {"region_geometry": True}})))
    assert grown.config.region_geometry and not saved.config.region_geometry
    old, new = saved.state_dict(), grown.state_dict()
    assert set(new) - set(old) == {"region_encoder.geometry.weight", "region_encoder.geometry.bias"}
    assert all(torch.equal(old[k], new[k]) for k in old)
    assert float(new["region_encoder.geometry.weight"].std()) > 0.1  # its own init (config.region_embedding_std)
    assert isinstance(grown, RegionLMForConditionalGeneration)
    with pytest.raises(RegionLMError, match="would drop or reshape saved weights"):
        build_model(config_from_dict(toy("x", model={"init_from": str(tmp_path / "saved"),
                                                     "config": {"pixel_recon_alpha": 0.0}})))


def test_each_stage_changes_only_its_parts(tmp_path):
    cfg = toy(tmp_path / "run", checkpoint_every=4)  # checkpoints at the end of stage 1 (4) and 8, 12
    cfg["stages"] = [{"name": "align", "steps": 4, "lr": 1e-2, "trainable": ["connector"]},
                     {"name": "lm", "steps": 4, "lr": 1e-2, "trainable": ["language_model"]},
                     {"name": "vision", "steps": 4, "lr": 1e-2, "trainable": ["vision_tower"]}]
    torch.manual_seed(0)
    init = build_model(config_from_dict(cfg)).state_dict()
    run(cfg)
    ckpts = [weights(p) for p in list_checkpoints(tmp_path / "run")]
    assert len(ckpts) == 3
    for before, after, part in zip([init] + ckpts[:-1], ckpts, ["connector", "language_model", "vision_tower"]):
        changed = {part_of(k) for k in after if not torch.equal(after[k], before[k])}
        assert changed == {part}


def test_loss_is_lm_plus_alpha_aux():
    from types import SimpleNamespace

    module = SimpleNamespace(config=SimpleNamespace(guide_alpha=0.5))  # the model's own alpha
    lm, aux, pixel = torch.tensor(2.0), torch.tensor(0.5), torch.tensor(0.25)
    out = SimpleNamespace(loss=lm + 0.5 * aux, lm_loss=lm, aux_loss=aux)
    own = Trainer(config_from_dict(toy("x")))._loss(out, module)
    assert float(own[0]) == 2.25 and float(own[1]) == 2.0 and float(own[2]) == 0.5
    override = Trainer(config_from_dict(toy("x", aux_alpha=2.0)))._loss(out, module)
    assert float(override[0]) == 3.0
    no_aux = Trainer(config_from_dict(toy("x")))._loss(SimpleNamespace(loss=lm, lm_loss=lm, aux_loss=None), module)
    assert float(no_aux[0]) == 2.0 and no_aux[2] == 0.0
    # the pixel reconstruction term (in the model's loss) is kept in every case
    out = SimpleNamespace(loss=lm + 0.5 * aux + pixel, lm_loss=lm, aux_loss=aux)
    assert float(Trainer(config_from_dict(toy("x", aux_alpha=2.0)))._loss(out, module)[0]) == 3.25
    with_pixel = SimpleNamespace(loss=lm + pixel, lm_loss=lm, aux_loss=None)
    assert float(Trainer(config_from_dict(toy("x")))._loss(with_pixel, module)[0]) == 2.25


def test_a_stage_that_trains_nothing_is_an_error(tmp_path):
    cfg = toy(tmp_path / "run")
    cfg["stages"] = [{"name": "regions", "steps": 2, "trainable": ["region_encoder"]}]
    with pytest.raises(RegionLMError, match="'regions' trains nothing"):
        run(cfg)


# ------------------------------------------------------------------------------------------------ learning


def test_toy_task_is_learned_well_below_its_marginal_entropy(tmp_path):
    """The colour task (say each frame's colour) needs the whole path: pixels -> vision tower -> connector ->
    LM. Its answers are uniform over 8 colours, so a model that learned only the answer format would sit at
    (2 ln 8 + 0) / 3 = 1.39 per label token (2 frames + eos); seeing the frames takes it far below."""
    cfg = toy(tmp_path / "run", data={"source": "toy", "num_frames": 2, "tasks": {"colour": 1.0}},
              batch_size=16, grad_accum=1, log_every=10, checkpoint_every=1000)
    cfg["stages"] = [{"name": "all", "steps": 150, "lr": 3e-3, "warmup": 20,
                      "trainable": ["connector", "language_model", "vision_tower"]}]
    summary = run(cfg)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(10, 151, 10))
    marginal = 2 * math.log(8) / 3
    assert summary["first_loss"] > 3.0 and summary["last_loss"] < 0.2 * marginal
    assert all(r["aux_loss"] == 0 and r["lm_loss"] == r["loss"] for r in log)  # text_coords: no aux loss
    assert (tmp_path / "run" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_toy_source_mixes_tasks_by_weight_and_shards_by_rank():
    cfg = config_from_dict(toy("x", data={"source": "toy", "num_frames": 2, "tasks": {"colour": 3, "copy": 1}}))
    model_config = build_model(cfg).config
    counts = {"colour": 0, "copy": 0}
    it = DATA_SOURCES["toy"](cfg, model_config, None, 0, 1).batches(0)
    for _ in range(100):
        batch, tasks = next(it)
        for t in tasks:
            counts[t] += 1
    assert 0.68 < counts["colour"] / 400 < 0.82
    # rank r of 2 takes the samples 2n + r of the one-process stream
    one = DATA_SOURCES["toy"](cfg, model_config, None, 0, 1)
    two = [DATA_SOURCES["toy"](cfg, model_config, None, r, 2) for r in range(2)]
    for n in range(6):
        for r in range(2):
            a, b = two[r].sample(n), one.sample(2 * n + r)
            assert a[0] == b[0] and a[3] == b[3] and np.array_equal(a[2], b[2])
    # a resumed stream starts exactly where the position says
    first = DATA_SOURCES["toy"](cfg, model_config, None, 0, 1).batches(0)
    next(first)
    assert torch.equal(next(first)[0]["input_ids"], next(one.batches(4))[0]["input_ids"])


@pytest.fixture(scope="module")
def world_tokenizer(tmp_path_factory):
    from regionlm.model.tokenizer import build_default_tokenizer

    folder = tmp_path_factory.mktemp("tok")
    build_default_tokenizer(folder, num_videos=6, vocab_size=420)
    return folder


def world(out, tokenizer, **over) -> dict:
    cfg = toy(out, **over)
    cfg["model"]["config"].update(region_encoder="token_mark", num_marks=8, max_regions=8,
                                  vision_config={**VISION, "image_size": 32})
    cfg["model"]["config"]["text_config"].pop("vocab_size")  # the tokenizer's
    cfg["tokenizer"] = {"path": str(tokenizer)}
    cfg["data"] = {"source": "world", "num_frames": 4, "world": {"size": 32, "frames": 8}}
    return cfg


@pytest.mark.parametrize("data, words", [
    ({"tasks": {"sot": 1, "dance": 2}}, ["data.tasks", "dance"]),
    ({"world": {"size": 8}}, ["data.world", "size"]),
    ({"world": {"colours": 3}}, ["data.world", "colours"]),
])
def test_world_data_errors_name_the_key(tmp_path, world_tokenizer, data, words):
    cfg = world(tmp_path / "run", world_tokenizer)
    cfg["data"].update(data)
    with pytest.raises(RegionLMError) as err:
        run(cfg)
    assert all(w in str(err.value) for w in words) and "\n" not in str(err.value)


def test_tiny_model_lowers_its_loss_on_regionworld(tmp_path, world_tokenizer):
    from regionlm.model import RegionLMForConditionalGeneration
    from regionlm.model.processing import RegionLMProcessor

    cfg = world(tmp_path / "run", world_tokenizer, batch_size=4, grad_accum=1, log_every=10,
                checkpoint_every=1000)
    cfg["stages"] = [{"name": "all", "steps": 120, "lr": 3e-3, "warmup": 10,
                      "trainable": ["connector", "language_model", "vision_tower", "region_encoder"]}]
    summary = run(cfg)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    first, last = log[0], log[-1]
    assert last["loss"] < 0.55 * first["loss"], (first, last)
    assert first["aux_loss"] > 0 and last["lm_loss"] < first["lm_loss"]  # token_mark's guide head is trained
    tasks = set().union(*(r["tasks"] for r in log))
    assert {"region_qa", "sot", "video_qa"} <= tasks
    # batches rendered in the loop: waiting for them is a real, not the whole, share of each window
    assert all(0 < r["data_wait"] < 1 for r in log)
    # the saved model + processor load and run
    final = Path(summary["final"])
    model = RegionLMForConditionalGeneration.from_pretrained(final).eval()
    processor = RegionLMProcessor.from_pretrained(final, config=model.config)
    from regionlm.model.world_examples import WorldTaskStream
    from regionlm.world import WorldConfig

    ex = next(iter(WorldTaskStream(WorldConfig(size=32, frames=8), "val", 0, {"sot": 1.0}, 4)))
    batch = processor([ex], train=False)
    new = model.generate(**batch, max_new_tokens=8, do_sample=False, **processor.generation_kwargs())
    assert new.shape[0] == 1 and 1 <= new.shape[1] <= 8


def test_a_world_run_ships_a_pointer_and_a_refer_head_fitted_on_its_weights(tmp_path, world_tokenizer):
    from regionlm.model.pointer import load_pointer
    from regionlm.model.refer import load_refer

    cfg = world(tmp_path / "run", world_tokenizer, batch_size=2, grad_accum=1, checkpoint_every=1000,
                pointer={"videos": 2, "seed": 5, "steps": 3, "refer_steps": 3})
    cfg["stages"] = [{"name": "all", "steps": 2, "lr": 1e-3, "trainable": ["connector"]}]
    summary = run(cfg)
    final = Path(summary["final"])
    assert summary["pointer"]["path"] == str(final / "pointer_head.safetensors")
    head = load_pointer(final)  # fitted on these weights (a stale head is refused)
    assert head is not None and float(head.aspect) > 0
    assert summary["pointer"]["refer"] == str(final / "refer_head.safetensors") and load_refer(final) is not None
    assert not list(final.parent.glob(".pointer-videos-*"))  # its videos are gone
    for pointer, words in (({"videos": 2, "seed": 0}, ["pointer", "training streams"]),
                           ({"videos": 0}, ["pointer.videos"]), ({"refer_steps": -1}, ["pointer.refer_steps"])):
        with pytest.raises(RegionLMError) as err:
            config_from_dict({**cfg, "pointer": pointer})
        assert all(w in str(err.value) for w in words)
    with pytest.raises(RegionLMError, match="pointer is fitted on RegionWorld"):
        config_from_dict(toy(tmp_path / "toy", pointer={}))


def test_real_checkpoints_load_into_the_parts(tmp_path, world_tokenizer):
    """vision_path / lm_path: local HF folders (a vision-only SigLIP or a full SigLIP, a Qwen2 causal LM) are
    loaded into the parts; a tokenizer larger than the LM's vocabulary resizes its embeddings."""
    from transformers import (AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, SiglipConfig, SiglipModel,
                              SiglipVisionConfig, SiglipVisionModel)

    vision = {k: v for k, v in VISION.items() if k not in ("model_type", "vision_use_head")}
    SiglipVisionModel(SiglipVisionConfig(**vision)).save_pretrained(tmp_path / "vis")
    full = SiglipModel(SiglipConfig(vision_config=vision, text_config={
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "vocab_size": 50}))
    full.save_pretrained(tmp_path / "siglip")
    text = {k: v for k, v in TEXT.items() if k != "model_type"}
    lm = Qwen2ForCausalLM(Qwen2Config(**{**text, "vocab_size": 300}))
    lm.save_pretrained(tmp_path / "lm")
    for folder, want in (("vis", SiglipVisionModel.from_pretrained(tmp_path / "vis").state_dict()),
                         ("siglip", full.vision_model.state_dict())):
        cfg = config_from_dict({**toy(tmp_path / "run"), "model": {
            "config": {"region_encoder": "text_coords"}, "vision_path": str(tmp_path / folder),
            "lm_path": str(tmp_path / "lm")}})
        model = build_model(cfg)
        got = model.vision_tower.state_dict()
        assert all(torch.equal(got[k], want[k]) for k in want)
        assert torch.equal(model.language_model.lm_head.weight, lm.lm_head.weight)
        assert model.config.text_config.vocab_size == 300
    tok = AutoTokenizer.from_pretrained(world_tokenizer)
    model = build_model(cfg, tok)
    assert model.config.text_config.vocab_size == len(tok) > 300
    assert model.language_model.get_input_embeddings().num_embeddings == len(tok)
    assert torch.equal(model.language_model.get_input_embeddings().weight[:300], lm.get_input_embeddings().weight)


# ------------------------------------------------------------------------------------------------ resume


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, differ[:5]


@pytest.mark.parametrize("stop", [4, 7])
def test_resume_ends_with_the_same_weights(tmp_path, stop):
    """k steps, stop, resume to N == N steps in one go, bit for bit, with grad accum: at the end of stage 1 (the
    next stage starts a fresh optimizer) and inside stage 2 (optimizer state, RNG and data position matter)."""
    full, parted = toy(tmp_path / "full"), toy(tmp_path / "parted")
    run(full)
    stopped = run(parted, max_steps=stop)
    assert not stopped["complete"] and stopped["final"] is None and stopped["step"] == stop
    assert latest_checkpoint(tmp_path / "parted").name == f"step-{stop:06d}"
    resumed = run(parted, resume=True)
    assert resumed["complete"] and resumed["resumed_from"] == stop
    assert_same_weights(weights(tmp_path / "full" / "final"), weights(tmp_path / "parted" / "final"))
    # the resumed log continues the interrupted one
    steps = [json.loads(line)["step"] for line in (tmp_path / "parted" / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 12 and stop in steps


def test_resume_on_regionworld_with_token_marks(tmp_path, world_tokenizer):
    """The world stream resumes at its position and token_mark's random mark draws replay from the saved RNG."""
    full = world(tmp_path / "full", world_tokenizer, checkpoint_every=3)
    parted = world(tmp_path / "parted", world_tokenizer, checkpoint_every=3)
    for cfg in (full, parted):
        cfg["stages"] = [{"name": "all", "steps": 6, "lr": 3e-3,
                          "trainable": ["connector", "language_model", "region_encoder"]}]
    run(full)
    run(parted, max_steps=4)
    run(parted, resume=True)
    assert_same_weights(weights(tmp_path / "full" / "final"), weights(tmp_path / "parted" / "final"))


def test_resume_with_data_workers(tmp_path, world_tokenizer):
    """With batches rendered by 2 DataLoader workers, a run stopped after an odd number of batches (so the resumed
    loader's worker 0 serves what was worker 1's turn) resumes bit for bit; 1 worker is the in-loop order."""
    cfgs = {}
    for name, workers in (("full", 2), ("parted", 2), ("one", 1), ("inline", 0)):
        cfg = world(tmp_path / name, world_tokenizer, checkpoint_every=3, grad_accum=1)
        cfg["data"]["workers"] = workers
        cfg["stages"] = [{"name": "all", "steps": 5, "lr": 3e-3, "trainable": ["connector", "language_model"]}]
        cfgs[name] = cfg
    run(cfgs["full"])
    run(cfgs["parted"], max_steps=3)
    run(cfgs["parted"], resume=True)
    assert_same_weights(weights(tmp_path / "full" / "final"), weights(tmp_path / "parted" / "final"))
    run(cfgs["one"])
    run(cfgs["inline"])
    assert_same_weights(weights(tmp_path / "one" / "final"), weights(tmp_path / "inline" / "final"))
    with pytest.raises(RegionLMError, match="data.workers"):
        run({**cfgs["full"], "data": {**cfgs["full"]["data"], "workers": -1}, "out_dir": str(tmp_path / "bad")})


def test_a_run_from_before_an_option_existed_resumes(tmp_path, world_tokenizer):
    """A checkpoint whose saved config lacks data options added later (workers, multi_frame_prob) resumes, their
    defaults being the old behaviour; a run that sets one of them to another value is still refused."""
    cfg = world(tmp_path / "run", world_tokenizer, checkpoint_every=2)
    cfg["stages"] = [{"name": "all", "steps": 4, "lr": 3e-3, "trainable": ["connector"]}]
    run(cfg, max_steps=2)
    state_path = latest_checkpoint(tmp_path / "run") / "state.json"
    state = json.loads(state_path.read_text())
    for key in ("workers", "multi_frame_prob"):
        del state["config"]["data"][key]
    state_path.write_text(json.dumps(state))
    changed = {**cfg, "data": {**cfg["data"], "multi_frame_prob": 0.9}}
    with pytest.raises(RegionLMError, match="'data' differs"):
        run(changed, resume=True)
    assert run(cfg, resume=True)["complete"]


def test_multi_frame_prob_reaches_the_examples(tmp_path, world_tokenizer):
    from transformers import AutoTokenizer

    from regionlm.train.trainer import WorldSource, build_model

    cfg = world(tmp_path / "run", world_tokenizer)
    cfg["data"].update(multi_frame_prob=1.0, first_frame_only=0.0, tasks={"region_caption": 1},
                       lookalike_pairs=True)
    tc = config_from_dict(cfg)
    tok = AutoTokenizer.from_pretrained(world_tokenizer)
    source = WorldSource(tc, build_model(tc, tok).config, tok, 0, 1)
    stream = source.stream(0)
    assert stream.options.multi_frame_prob == 1.0 and stream.options.lookalike_pairs
    examples = [ex for _, ex in zip(range(6), stream)]
    given = [int(ex.regions[0].given.sum()) for ex in examples]
    assert min(given) > 1, given  # every region spans frames


def test_right_padded_batches_train_without_the_mask_to_the_same_loss(tmp_path, world_tokenizer):
    """without_causal_mask: a processor's training batch (right-padded, no labels on padding) loses its attention
    mask, and the model's loss and gradients are the same without it; a left-padded batch, a label on a padded
    position or a batch with no labels keep their mask."""
    from transformers import AutoTokenizer

    from regionlm.train.trainer import WorldSource, build_model, without_causal_mask

    cfg = world(tmp_path / "run", world_tokenizer)
    cfg["model"]["config"].update(guide_alpha=0.5)  # the guide head reads hidden states too
    tc = config_from_dict(cfg)
    tok = AutoTokenizer.from_pretrained(world_tokenizer)
    model = build_model(tc, tok)
    source = WorldSource(tc, model.config, tok, 0, 1)
    batch = source.processor([ex for _, ex in zip(range(6), source.stream(0))], train=True)
    assert not batch["attention_mask"].all()  # rows of different lengths: some are padded
    lean = without_causal_mask(batch)
    assert "attention_mask" not in lean and set(lean) == set(batch) - {"attention_mask"}

    def loss_and_grads(b):
        torch.manual_seed(0)  # token marks are drawn at random in training
        model.zero_grad()
        out = model(**b)
        out.loss.backward()
        return out.loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    (loss, grads), (lean_loss, lean_grads) = loss_and_grads(batch), loss_and_grads(lean)
    assert torch.allclose(loss, lean_loss, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, lean_grads))

    left = source.processor([ex for _, ex in zip(range(6), source.stream(0))], train=True, padding_side="left")
    assert "attention_mask" in without_causal_mask(left)
    labelled = {**batch, "labels": torch.where(batch["attention_mask"].bool(), batch["labels"], 5)}
    assert "attention_mask" in without_causal_mask(labelled)
    assert "attention_mask" in without_causal_mask({k: v for k, v in batch.items() if k != "labels"})


def test_compiled_layers_train_as_the_eager_model_does(tmp_path, world_tokenizer):
    """compile: true compiles every vision and LM layer in place, and mask_pool's own tensor work (torch.compile's
    inductor, here on the CPU); a short RegionWorld run logs the same losses as without it (to float rounding),
    and the weights keep their names, so the final folder loads as any other."""
    import shutil

    import torch._dynamo

    from regionlm.train.trainer import build_model, compile_layers

    if not (shutil.which("c++") or shutil.which("g++")):
        pytest.skip("torch.compile's CPU backend needs a C++ compiler; this machine has none")

    encoder = {"region_encoder": "mask_pool", "region_geometry": True, "region_silhouette": True,
               "region_trajectory": True}  # the encoder whose own tensor work compiles too (compile_parts)

    def logged(name, **over):
        cfg = world(tmp_path / name, world_tokenizer, batch_size=4, grad_accum=1, log_every=2, **over)
        cfg["model"]["config"].update(encoder)
        cfg["stages"] = [{"name": "all", "steps": 4, "lr": 3e-3, "warmup": 1,
                          "trainable": ["connector", "language_model", "vision_tower", "region_encoder"]}]
        summary = run(cfg)
        log = [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
        return [r["loss"] for r in log], summary

    torch._dynamo.reset()
    try:
        eager, plain = logged("eager")
        compiled, summary = logged("compiled", compile=True)
        cfg = world(tmp_path / "x", world_tokenizer)
        cfg["model"]["config"].update(encoder)
        # TEXT and VISION: two LM layers, one vision layer; mask_pool: its pooling and its temporal merge
        assert compile_layers(build_model(config_from_dict(cfg))) == 2 + 1 + 2
    finally:
        torch._dynamo.reset()
    weights = [load_file(Path(s["final"]) / "model.safetensors") for s in (plain, summary)]
    assert set(weights[0]) == set(weights[1])
    assert len(compiled) == len(eager) == 2
    assert np.allclose(compiled, eager, rtol=1e-4), (compiled, eager)


def test_a_finished_run_resumes_into_appended_stages(tmp_path):
    """A run of stage 1 alone, resumed with stage 2 appended, equals running both stages in one go; changing a
    stage that already ran (or dropping one) is refused."""
    full, parted = toy(tmp_path / "full"), toy(tmp_path / "parted")
    run(full)
    first = run({**parted, "stages": parted["stages"][:1]})
    assert first["complete"] and first["step"] == 4
    resumed = run(parted, resume=True)
    assert resumed["complete"] and resumed["resumed_from"] == 4
    assert_same_weights(weights(tmp_path / "full" / "final"), weights(tmp_path / "parted" / "final"))
    changed = [{**parted["stages"][0], "lr": 1e-3}, parted["stages"][1]]
    with pytest.raises(RegionLMError, match="'stages' differs"):
        run({**parted, "stages": changed}, resume=True)
    with pytest.raises(RegionLMError, match="'stages' differs"):
        run({**parted, "stages": parted["stages"][:1]}, resume=True)


def test_resume_refuses_what_cannot_continue(tmp_path):
    cfg = toy(tmp_path / "run")
    with pytest.raises(RegionLMError, match="no checkpoint"):
        run(cfg, resume=True)
    run(cfg, max_steps=2)
    with pytest.raises(RegionLMError, match="already holds a run"):
        run(cfg)
    with pytest.raises(RegionLMError, match="'batch_size' differs"):
        run({**cfg, "batch_size": 2}, resume=True)


# ------------------------------------------------------------------------------------------------ checkpoint pieces


def test_rng_states_round_trip():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    packed = pack_rng()
    want = (random.random(), np.random.random(), np.random.normal(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    unpack_rng(packed)
    got = (random.random(), np.random.random(), np.random.normal(), torch.rand(3))
    assert want[:3] == got[:3] and torch.equal(want[3], got[3])


def test_optimizer_state_by_name_round_trip():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    names = {id(p): n for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([{"params": [model[0].weight, model[1].weight]},
                             {"params": [model[0].bias, model[1].bias], "weight_decay": 0.0}], lr=0.1)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    tensors, meta = split_optimizer_state(optimizer_state_by_name(opt, names))
    assert set(tensors) >= {"0.weight/exp_avg", "1.bias/exp_avg_sq"}
    meta = json.loads(json.dumps(meta))  # it goes through JSON
    opt2 = torch.optim.AdamW([{"params": [model[0].weight, model[1].weight]},
                              {"params": [model[0].bias, model[1].bias], "weight_decay": 0.0}], lr=0.1)
    load_optimizer_state_by_name(opt2, names, join_optimizer_state(tensors, meta))
    for p in model.parameters():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[p][key], opt2.state[p][key])
    assert opt2.param_groups[1]["weight_decay"] == 0.0 and opt2.param_groups[0]["betas"] == (0.9, 0.999)


def test_checkpoints_are_complete_pruned_and_unpickled(tmp_path):
    run(toy(tmp_path / "run", checkpoint_every=2, keep_checkpoints=2))
    root = tmp_path / "run" / "checkpoints"
    (root / ".tmp-step-000099-abc").mkdir()  # a crash mid-write leaves only a hidden temporary folder
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-000010", "step-000012"]
    assert latest_checkpoint(tmp_path / "run").name == "step-000012"
    files = sorted(p.name for p in (root / "step-000012").iterdir())
    assert files == ["model.safetensors", "optimizer.safetensors", "state.json"]
    state = json.loads((root / "step-000012" / "state.json").read_text())
    assert state["step"] == 12 and state["data_position"] == 12 * 4 * 2 and state["world_size"] == 1
    # tied embeddings are stored once and aliased
    assert state["model_aliases"] == {"language_model.lm_head.weight": "language_model.model.embed_tokens.weight"}


# ------------------------------------------------------------------------------------------------ distributed


def colour_only(out, **over) -> dict:
    # one task with fixed-length answers: every rank's mean loss has the same token count, so DDP's mean of
    # rank means equals one process's mean over the whole batch
    return toy(out, data={"source": "toy", "num_frames": 2, "tasks": {"colour": 1.0}}, **over)


def torchrun(tmp_path, cfg: dict, *args) -> subprocess.CompletedProcess:
    path = write_yaml(tmp_path / "ddp.yaml", cfg)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "regionlm.cli", "train", "--config", str(path), "--json", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_cpu_processes_match_one_process_with_the_whole_batch(tmp_path, mode):
    """torchrun --nproc_per_node 2 (gloo): each rank takes half of every batch (sharded by rank); the result
    equals one process training on both halves. FSDP2 also stops halfway and resumes (sharded optimizer state
    through the full-state checkpoint)."""
    single = colour_only(tmp_path / "single", batch_size=8)
    run(single)
    dist_cfg = colour_only(tmp_path / "dist", distributed=mode)
    if mode == "fsdp":
        first = torchrun(tmp_path, dist_cfg, "--max-steps", "6")
        assert first.returncode == 0, first.stderr[-3000:]
        proc = torchrun(tmp_path, dist_cfg, "--resume")
    else:
        proc = torchrun(tmp_path, dist_cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # only rank 0 prints
    summary = json.loads(lines[0])
    assert summary["complete"] and summary["world_size"] == 2 and summary["distributed"] == mode
    a, b = weights(tmp_path / "single" / "final"), weights(tmp_path / "dist" / "final")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5, rtol=1e-4), k
    assert any(not torch.equal(a[k], weights_init) for k, weights_init in _init_weights(single).items())
    log = (tmp_path / "dist" / "log.jsonl").read_text().splitlines()
    assert len(log) == len({json.loads(line)["step"] for line in log})  # one writer


def _init_weights(cfg) -> dict:
    torch.manual_seed(cfg["seed"] if "seed" in cfg else 0)
    return build_model(config_from_dict(cfg)).state_dict()


# ------------------------------------------------------------------------------------------------ LoRA


def test_lora_trains_only_adapters_and_merges(tmp_path):
    from peft import PeftModel

    from regionlm.model import RegionLMForConditionalGeneration

    cfg = toy(tmp_path / "run", lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    cfg["stages"] = [{"name": "lora", "steps": 6, "lr": 1e-2, "trainable": ["lora"]}]
    parsed = config_from_dict(cfg)
    torch.manual_seed(0)
    module = apply_lora(build_model(parsed), parsed.lora)
    set_trainable(module, ["lora"])
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".language_model." in n for n in trainable)
    assert any("q_proj" in n for n in trainable) and not any("vision_tower" in n for n in trainable)

    init = _init_weights(cfg)
    run(cfg)
    final = weights(tmp_path / "run" / "final")  # merged: plain RegionLM names, no lora tensors
    assert set(final) <= set(init) and not any("lora" in k for k in final)  # (tied lm_head saved once)
    changed = {k for k in final if not torch.equal(final[k], init[k])}
    assert changed and all(k.startswith("language_model.") and k.endswith(("q_proj.weight", "v_proj.weight"))
                           for k in changed)
    # merged model == base + saved adapter
    torch.manual_seed(0)
    base = build_model(parsed).eval()
    with_adapter = PeftModel.from_pretrained(base, tmp_path / "run" / "lora_adapter").eval()
    merged = RegionLMForConditionalGeneration.from_pretrained(tmp_path / "run" / "final").eval()
    source = DATA_SOURCES["toy"](parsed, merged.config, None, 0, 1)
    batch, _ = next(source.batches(1000))
    with torch.no_grad():
        assert torch.allclose(with_adapter(**batch).logits, merged(**batch).logits, atol=1e-5)


def test_lora_run_resumes_exactly(tmp_path):
    lora = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    stages = [{"name": "lora", "steps": 6, "lr": 1e-2, "trainable": ["lora", "connector"]}]
    full, parted = toy(tmp_path / "full", lora=lora), toy(tmp_path / "parted", lora=lora)
    full["stages"] = parted["stages"] = stages
    run(full)
    run(parted, max_steps=3)
    run(parted, resume=True)
    assert_same_weights(weights(tmp_path / "full" / "final"), weights(tmp_path / "parted" / "final"))
    assert_same_weights(load_file(str(tmp_path / "full" / "lora_adapter" / "adapter_model.safetensors")),
                        load_file(str(tmp_path / "parted" / "lora_adapter" / "adapter_model.safetensors")))


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_train_json_max_steps_and_resume(tmp_path, capsys):
    path = write_yaml(tmp_path / "t.yaml", toy(tmp_path / "ignored"))
    out = tmp_path / "out"
    assert cli_main(["train", "--config", str(path), "--out", str(out), "--max-steps", "3", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["step"] == 3 and not first["complete"] and first["out_dir"] == str(out)
    assert cli_main(["train", "--config", str(path), "--out", str(out), "--resume"]) == 0
    text = capsys.readouterr().out
    assert "training done" in text and str(out / "final") in text
    assert not (tmp_path / "ignored").exists()
    assert cli_main(["train", "--config", str(path), "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and math.isfinite(summary["last_loss"])


def test_sigterm_stops_at_the_end_of_a_step_with_a_checkpoint(tmp_path, world_tokenizer):
    """`timeout` or a scheduler sends SIGTERM to the whole process group (data workers included): the run ends
    after the step under way, writes a checkpoint of it (between the every-N ones), exits 143 with its summary,
    and --resume goes on exactly as if it had never stopped."""
    import signal
    import time

    cfg = world(tmp_path / "ignored", world_tokenizer, log_every=1, checkpoint_every=10_000, grad_accum=1)
    cfg["data"]["workers"] = 2
    cfg["stages"] = [{"name": "all", "steps": 10_000, "lr": 3e-3, "trainable": ["connector", "language_model"]}]
    path = write_yaml(tmp_path / "w.yaml", cfg)
    out = tmp_path / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "regionlm.cli", "train", "--config", str(path), "--out",
                             str(out), "--json"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    log = out / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    k = summary["step"]
    assert summary["stopped_by"] == "SIGTERM" and not summary["complete"] and k >= 3
    assert json.loads((latest_checkpoint(out) / "state.json").read_text())["step"] == k
    # on from the cut, and straight through, to the same step: the same weights
    cut = {**cfg, "out_dir": str(out)}
    run(cut, resume=True, max_steps=k + 2)
    run({**cfg, "out_dir": str(tmp_path / "straight")}, max_steps=k + 2)
    assert_same_weights(load_file(str(latest_checkpoint(out) / "model.safetensors")),
                        load_file(str(latest_checkpoint(tmp_path / "straight") / "model.safetensors")))


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_shipped_config_loads(name, monkeypatch):
    """Every key of every config in configs/ is checked; a fine-tune of a model trained first (runs/...) is checked
    against the shipped model folder in its place."""
    monkeypatch.chdir(REPO)  # their paths (tokenizer, init_from) are relative to the repository
    raw = yaml.safe_load((REPO / "configs" / name).read_text())
    shipped = "regionlm/assets/default_model"
    if str(raw["model"].get("init_from", "")).startswith("runs/"):
        raw["model"]["init_from"] = shipped
    if str(raw.get("tokenizer", {}).get("path", "")).startswith("runs/"):
        raw["tokenizer"]["path"] = shipped
    cfg = config_from_dict(raw, where=name)
    assert cfg.stages and all(s.steps > 0 for s in cfg.stages)


def test_the_next_default_config_is_the_shipped_recipe_plus_the_trajectory_token():
    """configs/default_trajectory.yaml must stay configs/default.yaml with the token on (and its own out_dir), so
    that what it measures against the shipped model is the token alone."""
    base = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    nxt = yaml.safe_load((REPO / "configs" / "default_trajectory.yaml").read_text())
    assert nxt["model"]["config"].pop("region_trajectory") is True
    assert "region_trajectory" not in base["model"]["config"]
    assert nxt.pop("out_dir") != base.pop("out_dir")
    assert nxt == base
