"""Tokenizers: the default model's byte-level BPE trained on RegionWorld text, and the special tokens a real
checkpoint's tokenizer needs.

Numbers are pre-tokenized as bare digit runs (never glued to the space before them) and every integer 0..99 is
forced to be one token, so a box ``[x1,y1,x2,y2]`` always costs the same 9 tokens and a coordinate is one
prediction, whatever the text around it. The chat template is a plain role/content template: the processor calls
``apply_chat_template`` the same way for this tokenizer and for a real Qwen2 one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from transformers import AddedToken, PreTrainedTokenizerFast

PAD, USER, ASSISTANT, SYSTEM, END = "<|pad|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"
VIDEO, REGION, OBJECT = "<video>", "<region>", "<obj>"
# Order fixes the ids: <video>, <region>, <obj> get 1, 2, 3, the defaults of RegionLMConfig.
SPECIAL_TOKENS = (PAD, VIDEO, REGION, OBJECT, USER, ASSISTANT, SYSTEM, END)
REGION_TOKENS = {"video_token_id": VIDEO, "region_token_id": REGION, "object_token_id": OBJECT}

# GPT-2's split, except that digit runs never take the preceding space: "57" is the same token everywhere.
PRETOKENIZE = r"'(?:s|t|re|ve|m|ll|d)| ?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{ raise_exception('unknown chat role ' + message['role']) }}"
    "{%- endif -%}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)

NUMBERS = tuple(str(n) for n in range(100))


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer of at most ``vocab_size`` tokens (special tokens included), trained on
    ``texts``, with every integer 0..99 a single token and the chat template set."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    floor = len(SPECIAL_TOKENS) + len(alphabet) + sum(len(n) == 2 for n in NUMBERS)
    if vocab_size < floor:
        raise ValueError(f"vocab_size={vocab_size} is too small: the bytes, the special tokens and the numbers "
                         f"0..99 alone need {floor}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok = Tokenizer.from_str(json.dumps(_force_numbers(json.loads(tok.to_str()), vocab_size)))
    return _wrap(tok)


def _force_numbers(spec: dict, vocab_size: int) -> dict:
    """Add the merge "d d" for every two-digit number BPE did not learn, dropping late-learned merges whose
    result no later merge uses (never a number's) to stay within ``vocab_size``."""
    from collections import Counter

    model = spec["model"]
    vocab: dict = model["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    needed = [n for n in NUMBERS if n not in vocab]
    protected = set(SPECIAL_TOKENS) | set(NUMBERS)
    used = Counter(t for m in merges for t in m)
    made_by = Counter(a + b for a, b in merges)
    i = len(merges) - 1
    while len(vocab) + len(needed) > vocab_size:
        a, b = merges[i]
        made = a + b
        if made not in protected and used[made] == 0:
            del merges[i]
            used[a] -= 1
            used[b] -= 1
            made_by[made] -= 1
            if made_by[made] == 0:
                del vocab[made]
        i -= 1
    for n in needed:
        merges.append((n[0], n[1]))
        vocab[n] = len(vocab) + 10**9  # after every existing id; renumbered below
    order = sorted(vocab, key=vocab.get)
    model["vocab"] = {t: i for i, t in enumerate(order)}
    model["merges"] = [list(m) for m in merges]
    for added in spec.get("added_tokens", []):  # the special tokens come first, so their ids do not move
        if model["vocab"][added["content"]] != added["id"]:
            raise AssertionError(f"special token {added['content']} moved")
    return spec


def _wrap(tok) -> PreTrainedTokenizerFast:
    out = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=END,
                                  extra_special_tokens=[VIDEO, REGION, OBJECT, USER, ASSISTANT, SYSTEM])
    out.chat_template = CHAT_TEMPLATE
    return out


def add_region_tokens(tokenizer) -> dict:
    """Add ``<video>``, ``<region>``, ``<obj>`` to a real checkpoint's tokenizer as special tokens (kept whole,
    skipped when decoding) and return their ids keyed like RegionLMConfig's fields, for
    ``config.update(add_region_tokens(tok))``. Tokens already present keep their ids. The language model's
    embeddings must then cover ``len(tokenizer)`` (``resize_token_embeddings``)."""
    new = [AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False)
           for t in REGION_TOKENS.values() if t not in tokenizer.get_vocab()]
    if new:
        tokenizer.add_tokens(new, special_tokens=True)
    if tokenizer.pad_token is None:  # batches need one; Qwen2 has <|endoftext|>, some checkpoints have none
        tokenizer.pad_token = tokenizer.eos_token
    return {key: tokenizer.convert_tokens_to_ids(t) for key, t in REGION_TOKENS.items()}


# ---------------------------------------------------------------------- training text


def world_corpus(num_videos: int, seed: int = 0, split: str = "train") -> list[str]:
    """Training text for the tokenizer: every annotation of ``num_videos`` RegionWorld videos (questions with
    their options, answers, captions, expressions, box and frame-box texts) written through the task prompt
    templates, plus the fixed phrases the processor adds."""
    from regionlm.regions import box_to_ints, box_to_text
    from regionlm.world.generate import make_video
    from regionlm.world.spec import WorldConfig

    from . import prompts

    if num_videos < 1:
        raise ValueError(f"num_videos must be at least 1, got {num_videos}")
    cfg = WorldConfig()
    texts = list(prompts.fixed_phrases())
    for index in range(num_videos):
        _, _, notes = make_video(seed, split, index, cfg)
        for rec in notes.region_qa + notes.video_qa:
            texts.append(prompts.build_prompt(rec["task"], question=rec["Question"], options=rec["options"]))
            texts.append(rec["Answer"])
        for rec in notes.region_caption:
            texts.append(prompts.build_prompt("region_caption"))
            texts.append(rec["caption"])
        for rec in notes.sot + notes.rsot:
            w, h = rec["width"], rec["height"]
            boxes = {t: (None if b is None or rec["absent"][t] else box_to_ints(b, w, h))
                     for t, b in enumerate(rec["boxes"])}
            texts.append(prompts.sot_answer(boxes))
            if "expression" in rec:
                texts.append(prompts.build_prompt("rsot", expression=rec["expression"]))
            else:
                texts.append(prompts.build_prompt("sot"))
        for rec in notes.reg:
            box = box_to_text(rec["box"], rec["width"], rec["height"])
            texts.append(prompts.build_prompt("reg") + " " + prompts.coords_text(box, rec["frame"]))
            texts.append(rec["expression"])
            texts.append(prompts.build_prompt("rec", expression=rec["expression"]))
            texts.append(box)
    return texts


def build_default_tokenizer(out_dir, num_videos: int = 400, seed: int = 0,
                            vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Train the default model's tokenizer on RegionWorld train-split text and save it to ``out_dir``
    (tokenizer.json + tokenizer_config.json + chat template; written to a temporary folder, then moved in)."""
    tok = train_tokenizer(world_corpus(num_videos, seed), vocab_size=vocab_size)
    save_tokenizer(tok, out_dir)
    return tok


def save_tokenizer(tokenizer, out_dir) -> Path:
    """``tokenizer.save_pretrained`` into a temporary sibling folder, then each file moved into ``out_dir`` with
    ``os.replace``: a reader never sees a half-written file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".tokenizer."))
    try:
        tokenizer.save_pretrained(tmp)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


__all__ = ["train_tokenizer", "add_region_tokens", "world_corpus", "build_default_tokenizer", "save_tokenizer",
           "CHAT_TEMPLATE", "SPECIAL_TOKENS", "REGION_TOKENS"]
