"""RegionLMProcessor: Examples -> the model's batch (ids, labels, frames, region and object masks).

Placeholders are expanded here to exactly the counts the config gives, so the model only fills positions:
``<video>`` -> config.num_context_tokens(T) tokens; each ``<region>`` -> config.tokens_per_region(given frames)
tokens, or, for encoders that show the region another way, text (text_coords: its box at its frame;
visual_marks: the colour its outline is drawn in); the object list -> one ``<obj>`` per track (object_tokens).
The prompt and the answer are tokenized apart (prompt = chat template up to the assistant turn), so the labels
are exactly the answer's tokens plus the template's end-of-turn token, and generation sees the same prompt ids.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from regionlm.data.io import atomic_write_json, read_text
from regionlm.errors import RegionLMError
from regionlm.regions import box_to_text, mask_to_box

from . import prompts
from .config import RegionLMConfig
from .example import Example, Region
from .tokenizer import OBJECT, REGION, REGION_TOKENS, VIDEO, save_tokenizer

PROCESSOR_CONFIG = "processor_config.json"
IGNORE = -100
_REGION_RE = re.compile(r"\[<region>\]|<region>")  # build_mc_prompt writes "[<region>]": replace the brackets too


class ProcessorInputError(RegionLMError, ValueError):
    """An example (or a tokenizer/config pair) the processor cannot turn into a batch."""


# ---------------------------------------------------------------------- how a <region> is written, per encoder
# (k, region, example) -> text. Encoders not listed get config.tokens_per_region(n) <region> tokens.

RegionWriter = Callable[[int, Region, Example], str]
REGION_WRITERS: dict[str, RegionWriter] = {}


def register_region_writer(encoder: str):
    def wrap(fn):
        REGION_WRITERS[encoder] = fn
        return fn

    return wrap


@register_region_writer("text_coords")
def _write_coords(k: int, region: Region, example: Example) -> str:
    frame = region.box_frame if region.box_frame is not None else int(np.flatnonzero(region.given)[0])
    if not 0 <= frame < len(region.masks):
        raise ValueError(f"region {k}: box_frame {frame} is outside the clip's {len(region.masks)} frames")
    box = mask_to_box(region.masks[frame])
    if box is None:
        raise ValueError(f"region {k}: its mask is empty on its box frame {frame}, so it has no box to write")
    h, w = region.masks.shape[1:]
    return prompts.coords_text(box_to_text(box, w, h), frame)


@register_region_writer("visual_marks")
def _write_mark(k: int, region: Region, example: Example) -> str:
    from .region.visual_marks import MARK_COLOURS  # lazily: the encoder module draws with the same colours

    names = prompts.colour_names(MARK_COLOURS)
    if k >= len(names):
        raise ValueError(f"region {k}: visual_marks has only {len(names)} mark colours")
    return prompts.mark_text(names[k])


# ---------------------------------------------------------------------- the processor


class RegionLMProcessor:
    """``processor(examples, train=True)`` -> dict of tensors for RegionLMForConditionalGeneration.

    tokenizer: the default BPE tokenizer (tokenizer.train_tokenizer) or a real checkpoint's tokenizer after
    tokenizer.add_region_tokens; its ids of ``<video>``/``<region>``/``<obj>`` must be the config's.
    """

    def __init__(self, tokenizer, config: RegionLMConfig):
        self.tokenizer = tokenizer
        self.config = config
        vocab = tokenizer.get_vocab()
        for key, token in REGION_TOKENS.items():
            if token not in vocab:
                raise ProcessorInputError(f"tokenizer has no {token} token: call "
                                          f"regionlm.model.tokenizer.add_region_tokens(tokenizer) first")
            if vocab[token] != getattr(config, key):
                raise ProcessorInputError(f"config.{key}={getattr(config, key)} but the tokenizer's {token} is "
                                          f"{vocab[token]}: set config.update(add_region_tokens(tokenizer))")
        if tokenizer.chat_template is None:
            raise ProcessorInputError("tokenizer has no chat template (tokenizer.chat_template is None)")
        self.end_ids = self._end_of_turn_ids()
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else self.end_ids[-1])

    # ------------------------------------------------------------ chat template

    def _chat(self, user: str, answer: Optional[str] = None, generation: bool = True) -> str:
        messages = [{"role": "user", "content": user}]
        if answer is not None:
            messages.append({"role": "assistant", "content": answer})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

    def _end_of_turn_ids(self) -> list:
        """The tokens the template writes right after an assistant message (``<|end|>``, Qwen2's
        ``<|im_end|>``): the model learns to emit them and generation stops on them. Falls back to EOS."""
        probe = "Probe answer 12"
        prefix, full = self._chat("question"), self._chat("question", probe, generation=False)
        ids: list = []
        if full.startswith(prefix + probe):
            ids = self._encode(full[len(prefix) + len(probe):].rstrip())
        if not ids:
            if self.tokenizer.eos_token_id is None:
                raise ProcessorInputError("cannot tell the end-of-turn token: the chat template writes nothing "
                                          "after an answer and the tokenizer has no eos_token")
            ids = [self.tokenizer.eos_token_id]
        return [int(i) for i in ids]

    def _encode(self, text: str) -> list:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ------------------------------------------------------------ one example

    def user_text(self, example: Example, name: str = "example") -> str:
        """The user turn: ``<video>`` tokens, the object list, then the prompt with its regions written out."""
        cfg = self.config
        prompt = example.prompt
        for token in (VIDEO, OBJECT):
            if token in prompt:
                raise ProcessorInputError(f"{name}: the prompt contains {token}; the processor adds it itself")
        n_placeholders = len(_REGION_RE.findall(prompt))
        if n_placeholders != len(example.regions):
            raise ProcessorInputError(f"{name}: the prompt has {n_placeholders} <region> placeholders but the "
                                      f"example has {len(example.regions)} regions")
        if len(example.regions) > cfg.max_regions:
            raise ProcessorInputError(f"{name}: {len(example.regions)} regions, more than config.max_regions="
                                      f"{cfg.max_regions}")
        writer = REGION_WRITERS.get(cfg.region_encoder)
        texts = []
        for k, region in enumerate(example.regions):
            if writer is None:
                texts.append(REGION * cfg.tokens_per_region(int(region.given.sum())))
            else:
                try:
                    texts.append(writer(k, region, example))
                except ValueError as err:
                    raise ProcessorInputError(f"{name}: {err}") from None
        it = iter(texts)
        # Region tokens keep the prompt's brackets (VideoRefer's "[<region>]"); written text replaces them.
        body = (_REGION_RE if writer else re.compile(re.escape(REGION))).sub(lambda m: next(it), prompt)
        head = VIDEO * cfg.num_context_tokens(len(example.frames)) + "\n"
        if cfg.uses_objects:
            head += prompts.OBJECT_LIST + " " + OBJECT * min(len(example.objects), cfg.max_objects) + "\n"
        return head + body

    def _ids(self, examples: Sequence[Example], names: Sequence[str], train: bool) -> tuple[list, list]:
        """Each example's token ids and, when training, labels (None otherwise). The batch's prompts are tokenized
        in one call of the tokenizer, and so are its answers (one call per text cost as much as the rest of
        the batch's text work)."""
        texts = [self._chat(self.user_text(ex, name)) for ex, name in zip(examples, names)]
        expected = self.config.num_context_tokens(len(examples[0].frames))  # the batch's examples share T
        video = self.config.video_token_id
        # The hundreds of <video> tokens are tokenized as one and repeated after: a special token is split off
        # whole before the rest is tokenized, so the ids are the same, and it was most of the tokenizer's work.
        prompts = self._encode_many([t.replace(VIDEO * expected, VIDEO, 1) for t in texts])
        for k, (name, prompt_ids) in enumerate(zip(names, prompts)):
            if prompt_ids.count(video) == 1:
                at = prompt_ids.index(video)
                prompt_ids[at:at + 1] = [video] * expected
                continue
            n_video = self._encode(texts[k]).count(video)  # e.g. a tokenizer that splits "<video>" into pieces
            raise ProcessorInputError(f"{name}: {n_video} <video> tokens after tokenizing, expected {expected}: "
                                      f"<video> must be a special token of the tokenizer")
        if not train:
            return prompts, [None] * len(prompts)
        for ex, name in zip(examples, names):
            if ex.answer is None:
                raise ProcessorInputError(f"{name}: no answer to train on (answer is None); use train=False to "
                                          f"generate")
        answers = [a + self.end_ids for a in self._encode_many([ex.answer for ex in examples])]
        return ([p + a for p, a in zip(prompts, answers)],
                [[IGNORE] * len(p) + a for p, a in zip(prompts, answers)])

    def _encode_many(self, texts: list) -> list:
        return [list(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    # ------------------------------------------------------------ batch

    def __call__(self, examples: Sequence[Example], train: bool = True, padding_side: Optional[str] = None
                 ) -> dict:
        """Examples (all with the same number of frames T) -> input_ids, attention_mask, labels (train only),
        pixel_values (B,T,3,S,S), region_masks (B,R,T,S,S), region_given (B,R,T), region_valid (B,R) and, for
        object_tokens, object_masks (B,O,T,S,S), object_valid (B,O). Padding: right in training, left for
        generation, unless ``padding_side`` says otherwise."""
        if not examples:
            raise ProcessorInputError("no examples to process")
        side = padding_side or ("right" if train else "left")
        if side not in ("left", "right"):
            raise ProcessorInputError(f"padding_side must be 'left' or 'right', got {side!r}")
        names = [_name(i, ex) for i, ex in enumerate(examples)]
        t = _check_frames(examples[0], names[0]).shape[0]
        for ex, name in zip(examples, names):
            if _check_frames(ex, name).shape[0] != t:
                raise ProcessorInputError(f"{name}: {len(ex.frames)} frames, but {names[0]} has {t}: all "
                                          f"examples of a batch need the same number of frames")
            _check_masks(ex, name)

        ids, labels = self._ids(examples, names, train)
        batch = _pad(ids, labels if train else None, self.pad_token_id, side)

        batch["pixel_values"] = torch.from_numpy(pixel_values([ex.frames for ex in examples], self.config))
        s = self.config.image_size

        r = max(1, max(len(ex.regions) for ex in examples))  # always present: a constant set of batch keys
        masks = np.zeros((len(examples), r, t, s, s), np.float32)
        given = np.zeros((len(examples), r, t), bool)
        for b, ex in enumerate(examples):
            for k, region in enumerate(ex.regions):
                masks[b, k] = resize_masks(region.masks, s)
                given[b, k] = region.given
        batch["region_masks"] = torch.from_numpy(masks)
        batch["region_given"] = torch.from_numpy(given)
        batch["region_valid"] = torch.from_numpy(
            np.array([[k < len(ex.regions) for k in range(r)] for ex in examples], bool))

        if self.config.uses_objects:
            counts = [min(len(ex.objects), self.config.max_objects) for ex in examples]
            o = max(1, max(counts))
            obj = np.zeros((len(examples), o, t, s, s), np.float32)
            for b, ex in enumerate(examples):
                for k in range(counts[b]):
                    obj[b, k] = resize_masks(ex.objects[k], s)
            batch["object_masks"] = torch.from_numpy(obj)
            batch["object_valid"] = torch.from_numpy(np.array([[k < n for k in range(o)] for n in counts], bool))
        return batch

    # ------------------------------------------------------------ text out

    def decode(self, ids, skip_special_tokens: bool = True):
        """Token ids -> text (stripped, as VideoRefer's inference saves it); a 2-D batch gives a list."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if ids and isinstance(ids[0], (list, tuple)):
            return [self.decode(row, skip_special_tokens) for row in ids]
        ids = [i for i in ids if i != IGNORE]
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens).strip()

    def generation_kwargs(self) -> dict:
        """eos / pad ids for ``model.generate``: decoding stops at the end-of-turn token."""
        return {"eos_token_id": self.end_ids[-1], "pad_token_id": self.pad_token_id}

    # ------------------------------------------------------------ files

    def save_pretrained(self, out_dir) -> Path:
        """Tokenizer files + processor_config.json (the RegionLMConfig as JSON), each written atomically."""
        out = save_tokenizer(self.tokenizer, out_dir)
        config = json.loads(self.config.to_json_string(use_diff=False))
        atomic_write_json(out / PROCESSOR_CONFIG, {"processor_class": type(self).__name__, "config": config})
        return out

    @classmethod
    def from_pretrained(cls, path, config: Optional[RegionLMConfig] = None) -> "RegionLMProcessor":
        """Load what save_pretrained wrote; ``config`` (e.g. the model's) replaces the saved one."""
        from transformers import AutoTokenizer

        path = Path(path)
        cfg_file = path / PROCESSOR_CONFIG
        if not cfg_file.is_file():
            raise ProcessorInputError(f"{path}: no {PROCESSOR_CONFIG} (not a saved RegionLMProcessor)")
        if config is None:
            try:
                saved = json.loads(read_text(cfg_file))["config"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ProcessorInputError(f"{cfg_file}: not a processor config (no 'config' object)") from None
            config = RegionLMConfig.from_dict(saved)
        return cls(AutoTokenizer.from_pretrained(path), config)


# ---------------------------------------------------------------------- arrays


def pixel_values(clips: Sequence[np.ndarray], config: RegionLMConfig) -> np.ndarray:
    """Clips of T frames each ((T, H, W, 3) uint8) -> (B, T, 3, S, S) float32, resized and normalised as the
    vision tower takes them."""
    s = config.image_size
    mean = np.asarray(config.image_mean, np.float32)[:, None, None]
    std = np.asarray(config.image_std, np.float32)[:, None, None]
    pixels = np.empty((len(clips), len(clips[0]), 3, s, s), np.float32)
    for b, frames in enumerate(clips):
        pixels[b] = resize_frames(frames, s)
    pixels -= mean  # in place, the whole batch at once: the same arithmetic as per example, no temporaries
    pixels /= std
    return pixels


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, 3, size, size) float32 in [0, 1]; area averaging when shrinking (no aliasing),
    bilinear when enlarging."""
    import cv2

    t, h, w, _ = frames.shape
    if (h, w) != (size, size):
        interp = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
        frames = np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])
    return frames.transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def resize_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W) bool -> (T, size, size) float32 in [0, 1]: the fraction of each output pixel the mask covers
    (area resize), so thin or small regions survive downscaling."""
    import cv2

    t, h, w = masks.shape
    m = masks.astype(np.float32)
    if (h, w) == (size, size):
        return m
    interp = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
    # cv2 resizes each channel on its own; frames go in as channels, 4 at a time: OpenCV's area resize at a
    # non-integer scale takes at most 4 channels (more fail an assertion: a 640x480 video's masks did).
    step = 4
    out = [cv2.resize(np.ascontiguousarray(m[i:i + step].transpose(1, 2, 0)), (size, size), interpolation=interp)
           for i in range(0, t, step)]
    out = [o[..., None] if o.ndim == 2 else o for o in out]
    return np.clip(np.concatenate(out, axis=-1).transpose(2, 0, 1), 0.0, 1.0)


def _name(i: int, ex: Example) -> str:
    ident = ex.meta.get("id") if isinstance(ex.meta, dict) else None
    return f"example {i}" + (f" ({ident})" if ident is not None else "") + f" [{ex.task}]"


def _check_frames(ex: Example, name: str) -> np.ndarray:
    f = ex.frames
    if not isinstance(f, np.ndarray) or f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8 or not len(f):
        shape = getattr(f, "shape", None)
        raise ProcessorInputError(f"{name}: frames must be a (T, H, W, 3) uint8 array with T >= 1, got "
                                  f"{type(f).__name__} {shape} {getattr(f, 'dtype', '')}")
    return f


def _check_masks(ex: Example, name: str) -> None:
    want = ex.frames.shape[:3]
    for kind, items in (("region", [r.masks for r in ex.regions]), ("object", list(ex.objects))):
        for k, m in enumerate(items):
            if np.shape(m) != want:
                raise ProcessorInputError(f"{name}: {kind} {k} masks have shape {np.shape(m)}, the frames "
                                          f"(T, H, W) are {want}")


def _pad(ids, labels, pad_id: int, side: str) -> dict:
    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad_id, np.int64)
    attention = np.zeros((len(ids), width), np.int64)
    out_labels = np.full((len(ids), width), IGNORE, np.int64)
    for b, row in enumerate(ids):
        sl = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        input_ids[b, sl] = row
        attention[b, sl] = 1
        if labels is not None:
            out_labels[b, sl] = labels[b]
    input_ids, attention, out_labels = (torch.from_numpy(a) for a in (input_ids, attention, out_labels))
    batch = {"input_ids": input_ids, "attention_mask": attention}
    if labels is not None:
        batch["labels"] = out_labels
    return batch


__all__ = ["RegionLMProcessor", "ProcessorInputError", "REGION_WRITERS", "register_region_writer",
           "resize_frames", "resize_masks", "PROCESSOR_CONFIG"]
