"""Tokenizer, prompts and processor: numbers as single tokens, placeholder counts equal to the config's, labels on
the answer only, region text substitutions, errors, save/load, and the batch running through a tiny model."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from transformers import AddedToken, Qwen2Tokenizer

from regionlm.errors import RegionLMError
from regionlm.model import RegionLMConfig, RegionLMForConditionalGeneration
from regionlm.model import prompts
from regionlm.model.config import CONNECTORS, REGION_ENCODERS
from regionlm.model.example import TASKS, Example, Region
from regionlm.model.processing import IGNORE, ProcessorInputError, RegionLMProcessor, resize_masks
from regionlm.model.region import REGION_ENCODER_REGISTRY
from regionlm.model.tokenizer import (SPECIAL_TOKENS, add_region_tokens, build_default_tokenizer,
                                      train_tokenizer, world_corpus)
from regionlm.regions import box_to_ints, box_to_text, mask_to_box, parse_box_text, parse_frame_boxes

S = 32  # the tiny model's input size; frames are 64 x 64, so everything is resized


@pytest.fixture(scope="module")
def corpus():
    return world_corpus(2, seed=0)


@pytest.fixture(scope="module")
def tok(corpus):
    return train_tokenizer(corpus, vocab_size=1024)


def tiny_config(tok, encoder="text_coords", connector="pool", **kw):
    return RegionLMConfig(
        region_encoder=encoder, connector=connector, t_selector_keep=5, max_regions=4, max_objects=3,
        vision_config={"model_type": "siglip_vision_model", "vision_use_head": False, "image_size": S,
                       "patch_size": 8, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2},
        text_config={"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": len(tok)}, **kw)


def box_masks(t, box, h=64, w=64):
    m = np.zeros((t, h, w), bool)
    x1, y1, x2, y2 = box
    m[:, y1:y2, x1:x2] = True
    return m


def frames(t, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, 64, 64, 3), dtype=np.uint8)


def given(t, frames_on):
    g = np.zeros(t, bool)
    g[list(frames_on)] = True
    return g


def two_region_example(t=4, answer="(A) Above it"):
    regions = [Region(box_masks(t, (4, 8, 20, 30)), given(t, [0])),
               Region(box_masks(t, (30, 30, 60, 50)), given(t, range(t)))]
    prompt = prompts.build_prompt("region_qa", question="Where is <region> compared with <region>?",
                                  options=["(A) Above it", "(B) Below it"])
    objects = [box_masks(t, (0, 0, 10, 10)), box_masks(t, (20, 20, 30, 30))]
    return Example("region_qa", frames(t), prompt, answer, regions, objects, meta={"id": "two-regions"})


def count(ids, token_id):
    return int((ids == token_id).sum())


# ---------------------------------------------------------------------- tokenizer


def test_integers_are_single_tokens_and_box_text_round_trips(tok):
    for n in range(100):
        ids = tok.encode(str(n), add_special_tokens=False)
        assert len(ids) == 1, (n, tok.convert_ids_to_tokens(ids))
        # the same token inside a box and after a space: a coordinate is one prediction wherever it stands
        assert ids[0] in tok.encode(f"[{n},{n},1,2]", add_special_tokens=False)
        assert ids[0] in tok.encode(f"Frame {n}:", add_special_tokens=False)
    rng = np.random.default_rng(0)
    for _ in range(50):
        x1, y1 = rng.integers(0, 60, 2)
        box = [int(x1), int(y1), int(x1 + rng.integers(1, 5)), int(y1 + rng.integers(1, 5))]
        text = box_to_text(box, 64, 64)
        ids = tok.encode(text, add_special_tokens=False)
        assert len(ids) == 9  # [ a , b , c , d ]
        assert tok.decode(ids) == text
        assert parse_box_text(tok.decode(ids)) == box_to_ints(box, 64, 64)
    answer = prompts.sot_answer({0: [1, 2, 3, 4], 1: None, 2: [97, 98, 99, 0]})
    assert answer == "Frame 1: [1,2,3,4]\nFrame 3: [97,98,99,0]"
    decoded = tok.decode(tok.encode(answer, add_special_tokens=False))
    assert parse_frame_boxes(decoded) == ({0: [1, 2, 3, 4], 2: [97, 98, 99, 0]}, [])


def test_tokenizer_special_tokens_and_chat_template(tok):
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    assert list(ids.values()) == list(range(len(SPECIAL_TOKENS)))
    # the config's default placeholder ids are the tokenizer's
    cfg = RegionLMConfig()
    assert (ids["<video>"], ids["<region>"], ids["<obj>"]) == (cfg.video_token_id, cfg.region_token_id,
                                                                cfg.object_token_id)
    assert tok.pad_token == "<|pad|>" and tok.eos_token == "<|end|>"
    assert tok.encode("<video><video><region>", add_special_tokens=False) == [1, 1, 2]
    assert tok.decode(tok.encode("a <obj>b", add_special_tokens=False), skip_special_tokens=True) == "a b"
    text = "Où est le cercle ? 😀\n\tok"  # bytes outside the corpus still round-trip
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "(B) No"}]
    assert tok.apply_chat_template(msgs, tokenize=False) == "<|user|>\nHi<|end|>\n<|assistant|>\n(B) No<|end|>\n"
    assert (tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
            == "<|user|>\nHi<|end|>\n<|assistant|>\n")


def test_vocab_size_is_a_ceiling_and_numbers_survive_a_small_budget(corpus):
    small = train_tokenizer(corpus, vocab_size=360)
    assert len(small) <= 360
    assert all(len(small.encode(str(n), add_special_tokens=False)) == 1 for n in range(100))
    assert small.decode(small.encode(corpus[3], add_special_tokens=False)) == corpus[3]
    with pytest.raises(ValueError, match="vocab_size=300 is too small"):
        train_tokenizer(corpus, vocab_size=300)


def test_world_corpus_covers_the_annotations(corpus):
    text = "\n".join(corpus)
    assert corpus == world_corpus(2, seed=0)  # a pure function of its arguments
    for piece in ("Answer with the option's letter", "Frame 1: [", "Track <region> in every frame.",
                  prompts.OBJECT_LIST, "in Frame 1", "the object outlined in"):
        assert piece in text
    with pytest.raises(ValueError):
        world_corpus(0)


def test_build_default_tokenizer_saves_a_loadable_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    tok = build_default_tokenizer(tmp_path / "tok", num_videos=2, vocab_size=512)
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    text = "<|user|>\nTrack <region> in every frame.<|end|>\nFrame 2: [3,4,5,6]"
    assert loaded.encode(text, add_special_tokens=False) == tok.encode(text, add_special_tokens=False)
    assert loaded.chat_template == tok.chat_template
    assert not list((tmp_path / "tok").glob(".*"))  # no temporary files left


def test_every_task_has_a_prompt():
    assert set(prompts.TASK_PROMPTS) == set(TASKS)
    assert prompts.build_prompt("rsot", expression="the red star") == "Track the red star in every frame."
    with pytest.raises(ValueError, match="unknown task"):
        prompts.build_prompt("dance")
    with pytest.raises(ValueError, match="wrong prompt fields"):
        prompts.build_prompt("rec")


# ---------------------------------------------------------------------- placeholders


@pytest.mark.parametrize("connector", CONNECTORS)
@pytest.mark.parametrize("encoder", REGION_ENCODERS)
@pytest.mark.parametrize("t", [1, 3, 8])
def test_placeholder_counts_equal_the_config(tok, encoder, connector, t):
    cfg = tiny_config(tok, encoder, connector)
    proc = RegionLMProcessor(tok, cfg)
    ex = two_region_example(t)
    ex.objects = [box_masks(t, (i, i, i + 5, i + 5)) for i in range(5)]  # more than max_objects=3
    batch = proc([ex])
    ids = batch["input_ids"][0]
    assert count(ids, cfg.video_token_id) == cfg.num_context_tokens(t)
    want_regions = sum(cfg.tokens_per_region(int(r.given.sum())) for r in ex.regions)
    assert count(ids, cfg.region_token_id) == want_regions
    assert count(ids, cfg.object_token_id) == (3 if cfg.uses_objects else 0)
    assert batch["pixel_values"].shape == (1, t, 3, S, S)
    assert batch["region_masks"].shape == (1, 2, t, S, S)
    if cfg.uses_objects:
        assert batch["object_masks"].shape == (1, 3, t, S, S)
        assert batch["object_valid"].tolist() == [[True, True, True]]
    else:
        assert "object_masks" not in batch


def test_config_counts_are_what_the_papers_design_says(tok):
    # guards the test above against a config that returns the same number for everything
    cfg = tiny_config(tok, "mask_pool", "pool")  # 4x4 grid, stride 2 -> 4 tokens per frame
    assert [cfg.num_context_tokens(t) for t in (1, 3, 8)] == [4, 12, 32]
    assert [cfg.tokens_per_region(n) for n in (1, 3, 8)] == [1, 3, 4]  # merged down to u=4
    stc = tiny_config(tok, "token_mark", "stc")
    assert [stc.num_context_tokens(t) for t in (1, 3, 8)] == [4, 8, 16]
    assert stc.tokens_per_region(8) == 1  # token_mark: text length does not grow with frames


# ---------------------------------------------------------------------- labels and padding


def test_labels_cover_exactly_the_answer_and_end_token(tok):
    cfg = tiny_config(tok, "mask_pool")
    proc = RegionLMProcessor(tok, cfg)
    short = Example("video_qa", frames(4), prompts.build_prompt("video_qa", question="How many objects?",
                                                                 options=["(A) 1", "(B) 2"]), "(B) 2")
    long = two_region_example(4, answer="(A) Above it, a long answer with [12,34,56,78]")
    batch = proc([short, long])
    end = tok.convert_tokens_to_ids("<|end|>")
    assert proc.end_ids == [end]
    for b, ex in enumerate([short, long]):
        ids, labels, attn = batch["input_ids"][b], batch["labels"][b], batch["attention_mask"][b]
        answer = tok.encode(ex.answer, add_special_tokens=False) + [end]
        n = int(attn.sum())
        assert attn[:n].all() and not attn[n:].any()  # right padding
        assert (ids[n:] == tok.pad_token_id).all() and (labels[n:] == IGNORE).all()
        supervised = labels[labels != IGNORE].tolist()
        assert supervised == answer
        assert ids[n - len(answer):n].tolist() == answer  # the answer ends the sequence ...
        assert (labels[:n - len(answer)] == IGNORE).all()  # ... and nothing before it is supervised
        assert proc.decode(labels[labels != IGNORE]) == ex.answer
        prompt_text = tok.decode(ids[:n - len(answer)])
        assert prompt_text.endswith("<|assistant|>\n") and prompt_text.startswith("<|user|>\n<video>")


def test_generation_batches_pad_left_and_carry_no_labels(tok):
    cfg = tiny_config(tok)
    proc = RegionLMProcessor(tok, cfg)
    short = Example("video_qa", frames(2), "Is anything red?", None)
    long = Example("sot", frames(2), prompts.build_prompt("sot"), None, [Region(box_masks(2, (1, 1, 9, 9)),
                                                                                 given(2, [0]))])
    batch = proc([short, long], train=False)
    assert "labels" not in batch
    attn = batch["attention_mask"]
    for b in range(2):
        n = int(attn[b].sum())
        assert attn[b, -n:].all() and not attn[b, :-n].any()
        assert tok.decode(batch["input_ids"][b, -n:]).endswith("<|assistant|>\n")
    assert int(attn[0].sum()) < int(attn[1].sum())
    right = proc([short, long], train=False, padding_side="right")
    assert right["attention_mask"][0, 0] == 1
    with pytest.raises(ProcessorInputError, match="no answer to train on"):
        proc([short])


# ---------------------------------------------------------------------- region text


def test_text_coords_writes_the_box_at_its_frame(tok):
    cfg = tiny_config(tok, "text_coords")
    proc = RegionLMProcessor(tok, cfg)
    t = 4
    masks = np.zeros((t, 64, 64), bool)
    masks[0, 0:16, 0:32] = True
    masks[2, 32:48, 16:64] = True  # a different box on frame 2
    ex = two_region_example(t)
    ex.regions = [Region(masks, given(t, [2])), Region(masks, given(t, [0, 2]), box_frame=0)]
    user = proc.user_text(ex)
    first = box_to_text(mask_to_box(masks[2]), 64, 64)
    assert first == "[25,50,99,75]"  # x2 = 64/64*100 clamps to 99
    assert f"Where is {first} in Frame 3 compared with [0,0,50,25] in Frame 1?" in user
    ids = proc([ex])["input_ids"]
    assert count(ids, cfg.region_token_id) == 0
    # a region whose box frame is empty cannot be written
    ex.regions[1] = Region(masks, given(t, [1]))
    with pytest.raises(ProcessorInputError, match=r"two-regions.*region 1: its mask is empty"):
        proc([ex])


def test_visual_marks_names_each_region_by_its_colour(tok):
    from regionlm.model.region.visual_marks import MARK_COLOURS

    names = prompts.colour_names(MARK_COLOURS)
    proc = RegionLMProcessor(tok, tiny_config(tok, "visual_marks"))
    user = proc.user_text(two_region_example())
    assert (f"Where is the object outlined in {names[0]} compared with the object outlined in {names[1]}?"
            in user)
    assert "<region>" not in user


def test_region_tokens_keep_the_prompts_brackets(tok):
    cfg = tiny_config(tok, "roi_box")
    user = RegionLMProcessor(tok, cfg).user_text(two_region_example())
    k = cfg.tokens_per_region(1)
    assert f"Where is [{'<region>' * k}] compared with [{'<region>' * k}]?" in user


def test_object_list_follows_the_video(tok):
    cfg = tiny_config(tok, "object_tokens")
    proc = RegionLMProcessor(tok, cfg)
    ex = two_region_example(2)
    user = proc.user_text(ex)
    video = "<video>" * cfg.num_context_tokens(2)
    assert user.startswith(f"{video}\n{prompts.OBJECT_LIST} <obj><obj>\nWhere is [<region>]")
    batch = proc([ex, Example("video_qa", frames(2), "How many objects?", "(A) 0")])
    assert batch["object_valid"].tolist() == [[True, True], [False, False]]
    assert batch["object_masks"][1].sum() == 0


# ---------------------------------------------------------------------- masks and pixels


def test_masks_are_resized_by_area_and_frames_normalised(tok):
    m = np.zeros((1, 64, 64), bool)
    m[0, 10:12, 20:22] = True  # one whole output pixel at S=32
    m[0, 40, 40] = True  # a quarter of one
    out = resize_masks(m, S)
    assert out.shape == (1, S, S) and out.dtype == np.float32
    assert out[0, 5, 10] == pytest.approx(1.0) and out[0, 20, 20] == pytest.approx(0.25)
    assert out.sum() == pytest.approx(1.25)  # area is kept
    long = np.zeros((300, 64, 64), bool)  # more frames than cv2 takes as channels at once
    long[299, :32] = True
    assert resize_masks(long, S)[299, :16].min() == 1.0 and resize_masks(long, S)[:299].max() == 0
    # area resize at a non-integer scale (as from a 960x540 video), 8 frames: OpenCV takes at most 4 channels there
    rng = np.random.default_rng(0)
    big = rng.random((8, 100, 150)) < 0.3
    want = np.stack([cv2.resize(f.astype(np.float32), (S, S), interpolation=cv2.INTER_AREA) for f in big])
    assert np.allclose(resize_masks(big, S), np.clip(want, 0, 1), atol=1e-6)
    proc = RegionLMProcessor(tok, tiny_config(tok))
    white = np.full((2, 48, 80, 3), 255, np.uint8)
    white[:, :, :, 2] = 0
    pix = proc([Example("video_qa", white, "Colour?", "(A) Yellow")])["pixel_values"]
    assert pix.shape == (1, 2, 3, S, S)
    assert torch.allclose(pix[0, :, :2], torch.ones(1)) and torch.allclose(pix[0, :, 2], -torch.ones(1))


# ---------------------------------------------------------------------- errors


def test_bad_examples_raise_naming_the_example(tok):
    proc = RegionLMProcessor(tok, tiny_config(tok, "mask_pool"))
    ok = two_region_example()
    wrong_count = two_region_example()
    wrong_count.regions = wrong_count.regions[:1]
    with pytest.raises(ProcessorInputError, match=r"example 1 \(two-regions\).*2 <region> placeholders but the "
                                                  r"example has 1 regions"):
        proc([ok, wrong_count])
    too_many = Example("region_qa", frames(2), "<region> " * 5, "x",
                       [Region(box_masks(2, (0, 0, 4, 4)), given(2, [0]))] * 5)
    with pytest.raises(ValueError, match="more than config.max_regions=4"):
        proc([too_many])
    with pytest.raises(RegionLMError, match="contains <video>"):
        proc([Example("video_qa", frames(2), "<video> what?", "x")])
    with pytest.raises(ProcessorInputError, match="same number of frames"):
        proc([ok, Example("video_qa", frames(3), "What?", "x")])
    with pytest.raises(ProcessorInputError, match=r"region 0 masks have shape \(4, 32, 32\)"):
        proc([Example("sot", frames(4), "Track <region>.", "x",
                      [Region(np.ones((4, 32, 32), bool), given(4, [0]))])])
    with pytest.raises(ProcessorInputError, match="uint8"):
        proc([Example("video_qa", frames(2).astype(np.float32), "What?", "x")])


def test_tokenizer_and_config_must_agree(tok):
    with pytest.raises(ProcessorInputError, match="config.region_token_id=9"):
        RegionLMProcessor(tok, tiny_config(tok, region_token_id=9))


# ---------------------------------------------------------------------- files


def test_save_load_round_trip(tok, tmp_path):
    cfg = tiny_config(tok, "token_mark", "stc")
    proc = RegionLMProcessor(tok, cfg)
    proc.save_pretrained(tmp_path / "p")
    files = {p.name for p in (tmp_path / "p").iterdir()}
    assert {"processor_config.json", "tokenizer.json", "tokenizer_config.json"} <= files
    assert not any(f.endswith((".bin", ".pkl", ".pt")) or f.startswith(".") for f in files)
    loaded = RegionLMProcessor.from_pretrained(tmp_path / "p")
    assert loaded.config.connector == "stc" and loaded.config.region_encoder == "token_mark"
    assert loaded.config.image_size == S
    ex = [two_region_example(3)]
    a, b = proc(ex), loaded(ex)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert loaded.end_ids == proc.end_ids
    with pytest.raises(RegionLMError, match="no processor_config.json"):
        RegionLMProcessor.from_pretrained(tmp_path)


# ---------------------------------------------------------------------- through the model

AVAILABLE = [e for e in REGION_ENCODERS if e in REGION_ENCODER_REGISTRY]


@pytest.mark.parametrize("encoder", AVAILABLE)
@pytest.mark.parametrize("connector", CONNECTORS)
def test_batch_runs_through_a_tiny_model(tok, encoder, connector):
    torch.manual_seed(0)
    cfg = tiny_config(tok, encoder, connector)
    model = RegionLMForConditionalGeneration(cfg)
    proc = RegionLMProcessor(tok, cfg)
    t = 3
    single = Example("sot", frames(t, 1), prompts.build_prompt("sot"),
                     prompts.sot_answer({0: [6, 12, 31, 46], 1: [7, 12, 32, 46], 2: [8, 12, 33, 46]}),
                     [Region(box_masks(t, (4, 8, 20, 30)), given(t, [0]))], [box_masks(t, (4, 8, 20, 30))])
    batch = proc([two_region_example(t), single,
                  Example("video_qa", frames(t, 2), "How many objects?", "(A) 2")])
    out = model(**batch)
    assert torch.isfinite(out.loss) and out.loss.item() > 0
    out.loss.backward()
    assert model.get_input_embeddings().weight.grad is not None
    model.eval()
    gen = proc([single], train=False)
    new = model.generate(**gen, max_new_tokens=4, do_sample=False, **proc.generation_kwargs())
    assert new.shape[0] == 1 and 1 <= new.shape[1] <= 4
    assert isinstance(proc.decode(new)[0], str)


def test_every_encoder_is_present():
    # the test above covers the encoders that exist; this one says which are still missing
    missing = sorted(set(REGION_ENCODERS) - set(REGION_ENCODER_REGISTRY))
    assert not missing, f"region encoders not written yet: {missing}"


# ---------------------------------------------------------------------- a real checkpoint's tokenizer

QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture()
def qwen2_tok():
    """A Qwen2 tokenizer class with Qwen2's special tokens and chat template (the vocabulary is tiny: no
    download)."""
    from tokenizers import pre_tokenizers

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for merged in ("Ġt", "he", "Ġthe"):
        vocab[merged] = len(vocab)
    tok = Qwen2Tokenizer(vocab=vocab, merges=[("Ġ", "t"), ("h", "e"), ("Ġt", "he")], unk_token=None,
                         eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_tokens([AddedToken(t, special=True, normalized=False)
                    for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")], special_tokens=True)
    tok.chat_template = QWEN2_TEMPLATE
    return tok


def test_real_qwen2_tokenizer_gets_region_tokens_and_labels(qwen2_tok):
    before = len(qwen2_tok)
    ids = add_region_tokens(qwen2_tok)
    assert len(qwen2_tok) == before + 3
    assert add_region_tokens(qwen2_tok) == ids  # idempotent
    assert qwen2_tok.encode("<video><region><obj>", add_special_tokens=False) == [
        ids["video_token_id"], ids["region_token_id"], ids["object_token_id"]]
    cfg = tiny_config(qwen2_tok, "mask_pool")
    cfg.update(ids)
    proc = RegionLMProcessor(qwen2_tok, cfg)
    im_end = qwen2_tok.convert_tokens_to_ids("<|im_end|>")
    assert proc.end_ids == [im_end]
    ex = two_region_example(2, answer="(A) the answer")
    batch = proc([ex])
    labels, ids_row = batch["labels"][0], batch["input_ids"][0]
    assert labels[labels != IGNORE].tolist() == qwen2_tok.encode("(A) the answer", add_special_tokens=False) + [
        im_end]
    assert count(ids_row, cfg.video_token_id) == cfg.num_context_tokens(2)
    assert count(ids_row, cfg.region_token_id) == sum(cfg.tokens_per_region(int(r.given.sum()))
                                                      for r in ex.regions)
    text = qwen2_tok.decode(ids_row)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<video>")
    assert proc.decode(labels[labels != IGNORE]) == "(A) the answer"
    # the same processor code runs a tiny model on the Qwen2 tokenizer's ids
    model = RegionLMForConditionalGeneration(cfg)
    assert math.isfinite(model(**batch).loss.item())


@pytest.mark.parametrize("which", ["default", "qwen2"])
def test_batch_ids_equal_the_whole_text_tokenized(which, tok, qwen2_tok):
    """The processor tokenizes a batch in one call with the <video> run written once and repeated after; the
    ids must be exactly those of each example's whole chat text tokenized on its own (the BPE trained here and
    Qwen2's tokenizer class)."""
    t = tok if which == "default" else qwen2_tok
    cfg = tiny_config(t, "mask_pool")
    if which == "qwen2":
        cfg.update(add_region_tokens(t))
    proc = RegionLMProcessor(t, cfg)
    examples = [two_region_example(4, answer="(A) the answer"),
                Example("video_qa", frames(4), prompts.build_prompt("video_qa", question="How many objects?",
                                                                    options=["(A) 1", "(B) 2"]), "(B) 2")]
    batch = proc(examples)
    for b, ex in enumerate(examples):
        whole = t(proc._chat(proc.user_text(ex)), add_special_tokens=False)["input_ids"]
        whole += t(ex.answer, add_special_tokens=False)["input_ids"] + proc.end_ids
        n = int(batch["attention_mask"][b].sum())
        assert batch["input_ids"][b, :n].tolist() == whole
