"""`regionlm ask` and `regionlm describe`: the main job on the command line.

    regionlm ask VIDEO "What is <region> doing?" --region box:x1,y1,x2,y2@F [--region ...] [--model DIR] [--json]
    regionlm describe VIDEO --region box:x1,y1,x2,y2@F [--model DIR] [--json]

VIDEO is a video file or a frame folder; each ``<region>`` of the question is the matching ``--region`` (in
order). A question with options (``... (A) red (B) blue``) is asked in the multiple-choice form the model was
trained on; the model answers the option it finds most likely, and the chosen letter is read off the answer. Without ``--model`` the shipped default model answers.
Everything a user can get wrong (video, regions, placeholders) is checked before the model is loaded. ``--json``
"seconds" is the model's time (loading left out), as in ``regionlm track``. A free answer that falls into a loop
stops there and keeps one copy of the looping span (``--loop-stop off`` to see the whole loop).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Optional

from regionlm.errors import RegionError, RegionLMError

_OPTION_MARK = re.compile(r"\(([A-Z])\)")
EMPTY = "(the model gave an empty answer)"


def add_parser(sub) -> None:
    a = sub.add_parser("ask", help="ask a question about regions of a video",
                       description="Ask a question about a video; each <region> of the question is one --region, "
                                   "in order. Options written (A) ... (B) ... are answered with a letter.")
    a.add_argument("video", help="video file or frame folder")
    a.add_argument("question", help='the question; each <region> is one --region, e.g. "What is <region> doing?"')
    _common(a, "a region of the question, in order: box:x1,y1,x2,y2@F, mask:PNG@F, rle:JSON@F or point:x,y@F "
               "(repeatable)")
    a.add_argument("--loop-stop", metavar="MODE", default="on",
                   help="on (an answer that ends in a loop, a span written again and again, stops there and is cut "
                        "back to the span's first copy; default) or off (decoding goes on to the token budget)")
    a.set_defaults(func=run_ask)

    d = sub.add_parser("describe", help="describe a region of a video in detail",
                       description="Describe one region of a video (what it is, colour, shape, size, motion).")
    d.add_argument("video", help="video file or frame folder")
    _common(d, "the region: box:x1,y1,x2,y2@F, mask:PNG@F, rle:JSON@F or point:x,y@F")
    d.add_argument("--region-propagation", metavar="MODE", default="classical",
                   help="classical (the region is followed from its frame to the frames the model sees by the "
                        "classical tracker, default) or off (the model sees it on its own frame only)")
    d.set_defaults(func=run_describe)


def _common(p, region_help: str) -> None:
    p.add_argument("--region", action="append", default=[], metavar="SPEC", help=region_help)
    p.add_argument("--model", metavar="DIR", help="a saved RegionLM model folder (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


# ------------------------------------------------------------------ multiple choice


def split_options(question: str) -> tuple[str, list[str]]:
    """(stem, ["(A) ...", "(B) ...", ...]) when the question lists options (A), (B), ... in order; else
    (question, [])."""
    starts = []
    for m in _OPTION_MARK.finditer(question):
        if m.group(1) == chr(ord("A") + len(starts)):
            starts.append(m.start())
    if len(starts) < 2:
        return question, []
    ends = starts[1:] + [len(question)]
    options = [question[s:e].strip() for s, e in zip(starts, ends)]
    options[-1] = options[-1].rstrip(" .")  # the answer instruction starts with its own full stop
    return question[:starts[0]].strip(), options


def question_prompt(question: str) -> str:
    """The prompt the model gets: a question with options in the training (VideoRefer-Bench-Q) form."""
    from regionlm.eval.metrics.multiple_choice import ANSWER_SUFFIX, build_mc_prompt

    stem, options = split_options(question)
    if not options or ANSWER_SUFFIX.strip(" .") in question:
        return question
    return build_mc_prompt(stem, options)


def parse_option(question: str, answer: str) -> Optional[str]:
    """The option letter the answer picks, when the question has options and the letter is one of them."""
    from regionlm.eval.metrics.multiple_choice import extract_choice, extract_choice_lenient

    _, options = split_options(question)
    letters = {o[1] for o in options}
    for extract in (extract_choice, extract_choice_lenient):  # the official reading first
        letter = extract(answer)
        if letter and letter.upper() in letters:
            return letter.upper()
    return None


# ------------------------------------------------------------------ commands


def show_note(note: Optional[str], as_json: bool) -> Optional[str]:
    """``note`` (RegionLM.video_note) printed on stderr unless the output is JSON (where it is a field); returned."""
    if note and not as_json:
        print(f"note: {note}", file=sys.stderr)
    return note


def _load(args, **options):
    from regionlm.api import RegionLM

    return RegionLM.load(args.model, progress=False, **options)


def run_ask(args) -> int:
    from regionlm.api import check_placeholders, check_regions_fit, timed

    if args.loop_stop not in ("on", "off"):
        raise RegionLMError(f"--loop-stop must be on or off, got {args.loop_stop!r}")
    check_placeholders(args.question, len(args.region))
    prompts, (_, H, W) = check_regions_fit(args.video, args.region, name="--region")
    model = _load(args, answer_loop_stop=args.loop_stop == "on")
    note = show_note(model.video_note(H, W), args.json)
    prompt = question_prompt(args.question)
    options = split_options(args.question)[1] if prompt != args.question else None  # options in the trained form
    answer, seconds = timed(model.ask, args.video, prompt, prompts, options=options)
    option = parse_option(args.question, answer)
    if args.json:
        print(json.dumps({"video": str(args.video), "question": args.question, "regions": list(args.region),
                          "answer": answer, "option": option, "model": model.path, "seconds": seconds,
                          "note": note}))
    else:
        print(answer or EMPTY)
        if option is not None and answer.strip() != option:
            print(f"(option {option})")
    return 0


def run_describe(args) -> int:
    from regionlm.api import check_regions_fit, timed

    if len(args.region) != 1:
        raise RegionError(f"describe takes exactly one --region, got {len(args.region)}")
    from regionlm.model.propagation import PROPAGATIONS

    if args.region_propagation not in PROPAGATIONS:
        raise RegionError(f"--region-propagation must be one of {', '.join(PROPAGATIONS)}, got "
                          f"{args.region_propagation!r}")
    prompts, (_, H, W) = check_regions_fit(args.video, args.region, name="--region")
    model = _load(args, region_propagation=args.region_propagation)
    note = show_note(model.video_note(H, W), args.json)
    text, seconds = timed(model.describe, args.video, prompts[0])
    if args.json:
        print(json.dumps({"video": str(args.video), "region": args.region[0], "description": text,
                          "region_propagation": args.region_propagation, "model": model.path,
                          "seconds": seconds, "note": note}))
    else:
        print(text or EMPTY)
    return 0


__all__ = ["add_parser", "run_ask", "run_describe", "split_options", "question_prompt", "parse_option"]
