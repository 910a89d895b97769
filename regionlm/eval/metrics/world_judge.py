"""A deterministic judge for RegionWorld descriptions (world-d): no language model, exact ground truth.

:class:`WorldJudge` implements the :class:`~regionlm.eval.metrics.judge.Judge` protocol. ``meta`` carries the
ground truth of the described object: ``{"object": <ground_truth.json object>, "events": <the video's events>}``.
The reply has the official format (``N. Name: score`` + ``Explanation: ...`` per dimension), so it goes through
the same parser and aggregation as an LLM judge's.

How a description is read (English; the RegionWorld vocabulary and common synonyms):

* the *subject* is the first sentence up to its first motion or event phrase: its first colour word
  (red, green, ...), first shape word (circle, square, ...) and first size word (small/little/tiny, large/big);
* the text is cut into clauses (at ``.``, ``;``, ``,`` and "then"); in each clause the phrases found are
  motion (``stays still`` / ``does not move`` / ``static`` ...; ``moves <direction>``), spin (``spins
  [anti]clockwise``, ``rotates``) and events: bounce (``bounces off the <wall> wall``), collision
  (``collides with``, ``hits``, ``bumps into``), colour change (``turns|becomes <colour>``), speed change
  (``speeds up``/``accelerates``, ``slows down``/``decelerates``), enter (``enters the frame from the <side>``),
  leave (``leaves|exits the frame on the <side>``) and hidden (``is hidden|passes|goes behind``). After a
  collision or hidden phrase the rest of the clause names the other object and is not read;
* negation is not understood ("never bounces" reads as a bounce), and start/end places are not scored.

The truth: shape, size, colour (the first one; any colour the object takes counts for the subject), static, spin
from the object record; the object's events (its own, and collisions where it is the other party) from the event
list; the heading from the reference description ("moves <direction>", which is computed from the simulator's
velocities that the ground-truth file does not store).

Scores (integers 0-5):

1. Subject Correspondence: 5, minus 3 when the shape is wrong or missing, minus 2 when the colour is.
2. Appearance Description: round(5 x right / 3) over colour, shape and size.
3. Temporal Description: round(5 x matched / truths) over the motion (static, or the heading; "moves" without
   a direction counts half), the spin (if it spins) and each event; an event matches a true event of the same kind
   whose detail (wall, side, colour) agrees when the description gives one.
4. Hallucination Detection: 5 minus one per claim the truth does not support: an unmatched event, a spin the
   object does not have (or the wrong way), a heading or static claim that contradicts the truth (minimum 0).

The reference description of any RegionWorld object scores 5 on all four (tested on generated splits).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

from ...world.language import DIRECTIONS
from ...world.spec import COLOURS, SHAPES

__all__ = ["WorldJudge", "DescriptionFacts", "ATTRIBUTES", "attribute_checks", "read_description", "object_events"]

ATTRIBUTES = ("colour", "shape", "size", "motion")

_WALL = r"(left|right|top|bottom)"
_COLOUR = "(" + "|".join(COLOURS) + ")"
_DIRS = "(" + "|".join(sorted(DIRECTIONS, key=len, reverse=True)) + ")"
SIZE_WORDS = {"small": "small", "little": "small", "tiny": "small", "large": "large", "big": "large"}

# (kind, pattern, group holding the detail or 0); "consumes" kinds end the clause: the rest names another object.
EVENT_PATTERNS = (
    ("bounce", re.compile(rf"\bbounc\w*(?:\s+(?:off|against)\s+(?:the\s+)?{_WALL}(?:\s+(?:wall|edge|side))?)?"), 1),
    ("collision", re.compile(r"\b(?:collid\w*|hits|bumps\s+into|crash\w*\s+into)\b"), 0),
    ("speed_up", re.compile(r"\b(?:speeds?\s+up|speeding\s+up|accelerat\w*|gets\s+faster)\b"), 0),
    ("slow_down", re.compile(r"\b(?:slows?\s+down|slowing\s+down|decelerat\w*|gets\s+slower)\b"), 0),
    ("colour_change", re.compile(rf"\b(?:turns|becomes|changes\s+(?:its\s+)?colou?r\s+to|changes\s+to)\s+{_COLOUR}\b"),
     1),
    ("enter", re.compile(rf"\b(?:enters|comes\s+into)\s+(?:the\s+)?(?:frame|view|scene)"
                         rf"(?:\s+(?:from|at|through)\s+the\s+{_WALL})?"), 1),
    ("leave", re.compile(rf"\b(?:leaves|exits)\s+(?:the\s+)?(?:frame|view|scene)"
                         rf"(?:\s+(?:on|at|from|through)\s+the\s+{_WALL})?"), 1),
    ("hidden", re.compile(r"\b(?:is\s+hidden|hides|disappears|passes|goes)\s+behind\b"), 0),
)
CONSUMES = frozenset({"collision", "hidden"})
STATIC = re.compile(r"\b(?:stays\s+still|remains\s+still|stands\s+still|does\s+not\s+move|doesn't\s+move|"
                    r"never\s+moves|is\s+static|stationary|motionless)\b")
MOVES = re.compile(rf"\bmov(?:es|ing)\b(?:\s+(?:to(?:wards)?\s+the\s+)?{_DIRS}\b)?")
SPIN = re.compile(r"\b(?:spins|spinning|rotates|rotating)\b(?:\s+(clockwise|anticlockwise|anti-clockwise|"
                  r"counterclockwise|counter-clockwise))?")
_CLAUSE_SPLIT = re.compile(r"[.;!?,]|\bthen\b")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")
_SHAPE_OF = {**{s: s for s in SHAPES}, **{s + "s": s for s in SHAPES}, "crosses": "cross"}


@dataclass
class DescriptionFacts:
    """What a description says about its object."""

    colour: Optional[str] = None
    shape: Optional[str] = None
    size: Optional[str] = None
    static: Optional[bool] = None  # the first motion claim: True "stays still", False "moves"
    heading: Optional[str] = None  # the direction of the first "moves <direction>"
    spin: Optional[str] = None  # "clockwise" | "anticlockwise" | "" (spins, no direction) | None (not said)
    events: list = field(default_factory=list)  # (kind, detail or None), in order


def read_description(text: str) -> DescriptionFacts:
    """The facts a description states (see the module docstring for the vocabulary)."""
    facts = DescriptionFacts()
    text = (text or "").lower()
    sentences = re.split(r"[.;!?]", text, maxsplit=1)
    first = sentences[0] if sentences else ""
    cut = min([m.start() for p in [STATIC, MOVES, SPIN] + [p for _, p, _ in EVENT_PATTERNS]
               for m in [p.search(first)] if m] + [len(first)])
    for word in _WORD.findall(first[:cut]):
        if facts.colour is None and word in COLOURS:
            facts.colour = word
        elif facts.shape is None and word in _SHAPE_OF:
            facts.shape = _SHAPE_OF[word]
        elif facts.size is None and word in SIZE_WORDS:
            facts.size = SIZE_WORDS[word]
    for clause in _CLAUSE_SPLIT.split(text):
        _read_clause(clause, facts)
    return facts


def _read_clause(clause: str, facts: DescriptionFacts) -> None:
    found = sorted(((m.start(), kind, m.group(group) if group else None)
                    for kind, pattern, group in EVENT_PATTERNS for m in pattern.finditer(clause)), key=lambda f: f[0])
    own_end = len(clause)
    for start, kind, detail in found:
        facts.events.append((kind, detail))
        if kind in CONSUMES:
            own_end = start  # the other object's description follows: read nothing more of this clause
            break
    own = clause[:own_end]
    static, moves = STATIC.search(own), MOVES.search(own)
    if facts.static is None and (static or moves):
        if static and (not moves or static.start() < moves.start()):
            facts.static = True
        else:
            facts.static, facts.heading = False, moves.group(1)
    spin = SPIN.search(own)
    if spin and facts.spin is None:
        word = spin.group(1) or ""
        facts.spin = "clockwise" if word == "clockwise" else "anticlockwise" if word else ""


def object_events(obj_id: int, events) -> list:
    """The object's events as (kind, detail): its own, and collisions where it is the other party."""
    out = []
    for e in events or ():
        if e.get("obj") == obj_id or (e.get("kind") == "collision" and e.get("other") == obj_id):
            detail = e.get("colour") if e["kind"] == "colour_change" else e.get("wall")
            out.append((e["kind"], detail if e["kind"] in ("bounce", "enter", "leave", "colour_change") else None))
    return out


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def _match_events(truth: list, claimed: list) -> tuple[int, list]:
    """(matched count, unmatched claims). Claims with a detail are matched first, each truth at most once."""
    left = list(truth)
    unmatched = []
    for kind, detail in sorted(claimed, key=lambda c: c[1] is None):
        hit = next((i for i, (k, d) in enumerate(left) if k == kind and (detail is None or d is None or d == detail)),
                   None)
        if hit is None:
            unmatched.append((kind, detail))
        else:
            left.pop(hit)
    return len(truth) - len(left), unmatched


def _name(event) -> str:
    kind, detail = event
    return kind.replace("_", " ") + (f" ({detail})" if detail else "")


class WorldJudge:
    """The deterministic RegionWorld judge. ``score(reference, prediction, meta)`` with
    ``meta = {"object": ground-truth object, "events": the video's events}``."""

    name = "world-deterministic"
    cache_replies = False  # instant and deterministic: nothing to keep between runs

    def score(self, reference: str, prediction: str, meta: Optional[Mapping] = None) -> str:
        if not meta or "object" not in meta:
            raise ValueError("WorldJudge needs meta={'object': <ground-truth object>, 'events': [...]}")
        obj = meta["object"]
        said = read_description(prediction)
        ref = read_description(reference)
        colours = {obj["colour"]} | {f.get("colour") for f in obj.get("frames", ()) if f.get("colour")}
        lines = []

        # 1. Subject: the identity (shape and colour).
        subject = 5 - 3 * (said.shape != obj["shape"]) - 2 * (said.colour not in colours)
        lines.append(("Subject Correspondence", max(0, subject),
                      f"the description is about {_said(said.colour)} {_said(said.shape)}; the object is a "
                      f"{obj['colour']} {obj['shape']}"))

        # 2. Appearance: colour, shape, size.
        checks = [("colour", said.colour, obj["colour"]), ("shape", said.shape, obj["shape"]),
                  ("size", said.size, obj["size"])]
        right = [n for n, s, t in checks if s == t]
        wrong = [f"{n} {_said(s)} (is {t})" for n, s, t in checks if s != t]
        lines.append(("Appearance Description", _round(5 * len(right) / len(checks)),
                      f"right {', '.join(right) or 'nothing'}" + (f"; wrong or missing {', '.join(wrong)}" if wrong
                                                                  else "")))

        # 3 and 4. Motion, spin and events against the truth.
        truths, matched, false_claims = 0.0, 0.0, []
        truths += 1
        if obj.get("static"):
            matched += said.static is True
            if said.static is False:
                false_claims.append("says it moves, it stays still")
        else:
            if said.static is False:
                if said.heading is None:
                    matched += 0.5
                elif ref.heading is None or said.heading == ref.heading:
                    matched += 1
                else:
                    false_claims.append(f"says it moves {said.heading}, it moves {ref.heading}")
            elif said.static is True:
                false_claims.append("says it stays still, it moves")
        spin = float(obj.get("spin") or 0.0)
        true_spin = "clockwise" if spin > 0 else "anticlockwise" if spin < 0 else None
        if true_spin:
            truths += 1
            matched += said.spin in ("", true_spin)
        if (said.spin and said.spin != true_spin) or (said.spin == "" and not true_spin):
            false_claims.append(f"says it spins{' ' + said.spin if said.spin else ''}, "
                                f"{'it spins ' + true_spin if true_spin else 'it does not spin'}")
        events = object_events(obj["id"], meta.get("events"))
        n_matched, invented = _match_events(events, said.events)
        truths += len(events)
        matched += n_matched
        false_claims += [f"invented {_name(e)}" for e in invented]
        missed = len(events) - n_matched
        lines.append(("Temporal Description", _round(5 * matched / truths),
                      f"matched {matched:g} of {truths:g} motion facts and events" +
                      (f"; missed {missed} event(s)" if missed else "")))
        lines.append(("Hallucination Detection", max(0, 5 - len(false_claims)),
                      "; ".join(false_claims) if false_claims else "nothing unsupported"))
        return "\n".join(f"{i}. {dim}: {score}\nExplanation: {why}" for i, (dim, score, why) in enumerate(lines, 1))


def attribute_checks(reference: str, prediction: str, obj: Mapping) -> dict:
    """Whether the description names each of the object's attributes right: ``colour`` (its first colour or any it
    turns), ``shape``, ``size`` and ``motion`` (a static object is said to stay still; a moving one to move in
    the reference description's heading). A missing attribute is wrong."""
    said, ref = read_description(prediction), read_description(reference)
    colours = {obj["colour"]} | {f.get("colour") for f in obj.get("frames", ()) if f.get("colour")}
    if obj.get("static"):
        motion = said.static is True
    else:
        motion = said.static is False and said.heading is not None and said.heading == ref.heading
    return {"colour": said.colour in colours, "shape": said.shape == obj["shape"], "size": said.size == obj["size"],
            "motion": motion}


def _said(value: Optional[str]) -> str:
    return value if value else "(not said)"
