"""Per-task prompt and answer texts. Short on purpose: the default model is tiny and learns them from scratch.

A prompt is the user's text with one ``<region>`` per region of the example; the processor adds ``<video>``, the
object list and the chat template, and writes ``<region>`` out (tokens, box text or a mark colour). Boxes in text
are Elysium's ``[x1,y1,x2,y2]`` with integers in [0, 100) (regions.box_to_text); frames in text count from 1.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from regionlm.eval.metrics.multiple_choice import build_mc_prompt
from regionlm.regions import format_frame_boxes

from .example import TASKS

OBJECT_LIST = "Here is a list of objects in the video:"

TASK_PROMPTS: dict[str, Callable[..., str]] = {}


def register_prompt(task: str):
    def wrap(fn):
        TASK_PROMPTS[task] = fn
        return fn

    return wrap


@register_prompt("region_qa")
def _region_qa(question: str, options: Sequence[str]) -> str:
    return build_mc_prompt(question, options)  # VideoRefer-Bench-Q's own prompt: scores compare


@register_prompt("video_qa")
def _video_qa(question: str, options: Sequence[str]) -> str:
    return build_mc_prompt(question, options)


@register_prompt("region_caption")
def _region_caption() -> str:
    return "Describe <region> in detail."


@register_prompt("sot")
def _sot(box: Optional[str] = None) -> str:
    # Elysium gives the first box as text too: copying it and moving it is far easier to learn than reading a
    # position back out of pooled region features (the mask_pool model wrote a constant track without it)
    return "Track <region> in every frame." + (f" Frame 1: {box}" if box else "")


@register_prompt("rsot")
def _rsot(expression: str) -> str:
    return f"Track {expression} in every frame."


@register_prompt("reg")
def _reg() -> str:
    return "Give a short expression that refers to <region>."


@register_prompt("rec")
def _rec(expression: str) -> str:
    return f"Where is {expression}? Answer with a box."


def build_prompt(task: str, **fields) -> str:
    """The user prompt of ``task`` (one of example.TASKS) from its fields (question/options, expression)."""
    try:
        fn = TASK_PROMPTS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}") from None
    try:
        return fn(**fields)
    except TypeError as err:
        raise ValueError(f"task {task!r}: wrong prompt fields {sorted(fields)} ({err})") from None


def sot_answer(boxes: dict) -> str:
    """{0-based frame: [4 ints in 0..99] or None} -> ``"Frame 1: [..]\\nFrame 2: [..]"``, absent frames left out
    (regions.parse_frame_boxes reads it back)."""
    return "\n".join(format_frame_boxes({t: boxes[t]}) for t in sorted(boxes) if boxes[t] is not None)


def coords_text(box_text: str, frame: int) -> str:
    """How text_coords writes a region: ``"[x1,y1,x2,y2] in Frame k"`` (``frame`` 0-based)."""
    return f"{box_text} in Frame {int(frame) + 1}"


def mark_text(colour: str) -> str:
    """How visual_marks writes a region drawn on the frames in ``colour``."""
    return f"the object outlined in {colour}"


def fixed_phrases() -> list[str]:
    """Every fixed piece of prompt text (for the tokenizer's training corpus)."""
    out = [OBJECT_LIST, _region_caption(), _sot(), _reg(), _rsot("the object"), _rec("the object")]
    out += [coords_text("[0,0,99,99]", t) for t in range(64)]
    try:
        from .region.visual_marks import MARK_COLOURS

        out += [mark_text(name) for name in colour_names(MARK_COLOURS)]
    except ImportError:  # the visual_marks encoder is not installed; its phrases are plain words anyway
        pass
    return out


def colour_names(colours) -> list[str]:
    """Names of visual_marks.MARK_COLOURS, whether it maps names to RGB or lists names / (name, rgb) pairs."""
    if isinstance(colours, dict):
        return [str(k) for k in colours]
    return [c if isinstance(c, str) else str(c[0]) for c in colours]


__all__ = ["TASK_PROMPTS", "OBJECT_LIST", "register_prompt", "build_prompt", "sot_answer", "coords_text",
           "mark_text", "fixed_phrases", "colour_names"]
