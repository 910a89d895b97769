"""Region multiple-choice questions in the five VideoRefer-Bench-Q types, computed from the ground truth.

Each template returns a Candidate: the question (with `<region>` placeholders), the regions it is about, the
correct answer and a pool of plausible distractors. Templates whose premise holds for any object also give
`answer_for(other)`, so the same question can be asked about a look-alike: when the look-alike's answer differs,
that answer is put among the options and stored, and a benchmark can swap the regions and check that the answer
follows the region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import language as L
from .facts import Facts, ObjectFacts
from .spec import COLOURS, SHAPES, SIZES, WALLS

Answer = Callable[[ObjectFacts], "str | None"]


@dataclass
class Candidate:
    qtype: str
    template: str
    question: str
    regions: list[int]  # object ids, one per <region>, in order
    answer: str
    pool: list[str]
    answer_for: Answer | None = None  # same question about another object in the first region's place


def _others(F: Facts, f: ObjectFacts) -> list[ObjectFacts]:
    return [g for g in F.present if g.id != f.id]


def _absent_names(F: Facts, rng, k: int = 3) -> list[str]:
    """Names of objects that are not in the video: distractors for 'which object' questions."""
    present = {(g.colour, g.shape) for g in F.present}
    out = []
    while len(out) < k:
        c, s = list(COLOURS)[rng.integers(len(COLOURS))], SHAPES[rng.integers(len(SHAPES))]
        if (c, s) not in present and f"the {c} {s}" not in out:
            out.append(f"the {c} {s}")
    return out


def _rarely_if_none(F, f, rng, ans, none) -> bool:
    """True when neither f nor its look-alike has anything to report: then ask only now and then, so that the
    'nothing' answer does not dominate its template."""
    look = F.lookalike(f)
    return ans(f) == none and (look is None or ans(look) == none) and rng.random() > 0.3


def _distinct_first(events, phrase) -> "str | None":
    """The phrase of the first event, or None when two events share the first frame (no single 'first')."""
    if len(events) >= 2 and events[1].frame == events[0].frame:
        return None
    return phrase(events[0]) if events else None


# --- Basic --------------------------------------------------------------------------------------------------
def q_describe(F, f, rng):
    def ans(g):
        return f"a {g.size} {g.colour} {g.shape}"

    pool = [f"a {s} {f.colour} {f.shape}" for s in SIZES]
    pool += [f"a {f.size} {f.colour} {s}" for s in SHAPES] + [f"a {f.size} {c} {f.shape}" for c in COLOURS]
    pool += [ans(g) for g in _others(F, f)]
    return Candidate("Basic Questions", "describe", "Which best describes <region>?", [f.id], ans(f), pool, ans)


def q_colour(F, f, rng):
    def ans(g):
        return g.colour

    pool = [g.colour for g in F.present] + list(COLOURS)
    return Candidate("Basic Questions", "colour", "What colour is <region> when it first appears?", [f.id],
                     ans(f), pool, ans)


def q_shape(F, f, rng):
    def ans(g):
        return g.shape

    pool = [g.shape for g in F.present] + list(SHAPES)
    return Candidate("Basic Questions", "shape", "What shape is <region>?", [f.id], ans(f), pool, ans)


def q_motion(F, f, rng):
    def ans(g):
        return F.motion_at_start(g)

    pool = ["it stays still"] + [f"it moves {d}" for d in L.DIRECTIONS]
    return Candidate("Basic Questions", "motion", "How does <region> move when it first appears?", [f.id],
                     ans(f), pool, ans)


def q_spin(F, f, rng):
    def ans(g):
        return "it spins clockwise" if g.spin > 0 else "it spins anticlockwise" if g.spin < 0 else "it does not spin"

    pool = ["it spins clockwise", "it spins anticlockwise", "it does not spin", "it grows and shrinks"]
    return Candidate("Basic Questions", "spin", "Does <region> spin?", [f.id], ans(f), pool, ans)


# --- Sequential ---------------------------------------------------------------------------------------------
def _event_pool(F, f, rng) -> list[str]:
    pool = [F.phrase(f, e) for e in f.events]
    pool += [f"bounces off the {w} wall" for w in WALLS]
    pool += [f"collides with {F.refer(g.id)}" for g in _others(F, f)]
    pool += ["speeds up", "slows down", f"turns {list(COLOURS)[rng.integers(len(COLOURS))]}"]
    pool += [f"leaves the frame on the {WALLS[rng.integers(4)]}", "nothing happens to it"]
    return pool


def q_first_event(F, f, rng):
    def ans(g):
        if not g.events:
            return "nothing happens to it"
        return _distinct_first(g.events, lambda e: F.phrase(g, e))

    a = ans(f)
    if a is None:
        return None
    return Candidate("Sequential Questions", "first_event", "What happens to <region> first?", [f.id], a,
                     _event_pool(F, f, rng), ans)


def q_after_event(F, f, rng):
    phrases = [F.phrase(f, e) for e in f.events]
    usable = [i for i, p in enumerate(phrases) if phrases.count(p) == 1
              and (i + 1 == len(phrases) or f.events[i + 1].frame != f.events[i].frame)
              and (i == 0 or f.events[i - 1].frame != f.events[i].frame)]
    if not usable:
        return None
    i = usable[rng.integers(len(usable))]
    a = phrases[i + 1] if i + 1 < len(phrases) else "nothing else happens to it"
    pool = [p for p in _event_pool(F, f, rng) if p != phrases[i]] + ["nothing else happens to it"]
    return Candidate("Sequential Questions", "after_event",
                     f"What happens to <region> right after it {phrases[i]}?", [f.id], a, pool)


def q_colour_change(F, f, rng):
    def ans(g):
        return f"it stays {g.colour}" if g.colour == g.final_colour else f"it turns from {g.colour} to {g.final_colour}"

    cols = [g.colour for g in F.present] + list(COLOURS)
    pool = [f"it stays {c}" for c in cols[:4]] + [f"it turns from {f.colour} to {c}" for c in cols if c != f.colour]
    pool += [f"it turns from {c} to {f.colour}" for c in cols[:3] if c != f.colour]
    return Candidate("Sequential Questions", "colour_change", "How does the colour of <region> change?", [f.id],
                     ans(f), pool, ans)


def q_bounce_count(F, f, rng):
    def ans(g):
        return L.count_word(sum(e.kind == "bounce" for e in g.events))

    if _rarely_if_none(F, f, rng, ans, L.count_word(0)):
        return None
    return Candidate("Sequential Questions", "bounce_count", "How many times does <region> bounce off a wall?",
                     [f.id], ans(f), [L.count_word(n) for n in range(5)], ans)


# --- Relationship -------------------------------------------------------------------------------------------
def _relation(F, g, h) -> "str | None":
    both = sorted(set(g.visible_frames) & set(h.visible_frames))
    if g.id == h.id or not both:
        return None
    dx, dy = F.centre(g.id, both[0]) - F.centre(h.id, both[0])
    major, minor = max(abs(dx), abs(dy)), min(abs(dx), abs(dy))
    if major < 3 or major < 1.5 * minor:  # too close to call
        return None
    if abs(dx) > abs(dy):
        return "to the left of it" if dx < 0 else "to the right of it"
    return "above it" if dy < 0 else "below it"


def q_relative(F, f, rng):
    look = F.lookalike(f)
    others = [h for h in _others(F, f) if look is None or h.id != look.id]
    if not others:
        return None
    h = others[rng.integers(len(others))]
    a = _relation(F, f, h)
    if a is None:
        return None
    pool = ["to the left of it", "to the right of it", "above it", "below it"]
    return Candidate("Relationship Questions", "relative",
                     "Where is <region> compared with <region> when both are first in view?", [f.id, h.id], a, pool,
                     lambda g: _relation(F, g, h))


def _object_pool(F, f, rng, extra: str) -> list[str]:
    return [F.refer(g.id) for g in _others(F, f)] + [extra] + _absent_names(F, rng)


def q_collides_with(F, f, rng):
    none = "it does not collide with anything"

    def ans(g):
        hits = [e for e in g.events if e.kind == "collision"]
        if not hits:
            return none
        return _distinct_first(hits, lambda e: F.refer(e.other if e.obj == g.id else e.obj))

    a = ans(f)
    if a is None or _rarely_if_none(F, f, rng, ans, none):
        return None
    return Candidate("Relationship Questions", "collides_with", "Which object does <region> collide with first?",
                     [f.id], a, _object_pool(F, f, rng, none), ans)


def q_closest(F, f, rng):
    t = F.T - 1

    def ans(g):
        if g.boxes[t] is None:
            return None
        near = sorted((float(np.linalg.norm(F.centre(h.id, t) - F.centre(g.id, t))), h.id)
                      for h in F.present if h.id != g.id and h.boxes[t] is not None)
        if not near or (len(near) > 1 and near[1][0] < 1.25 * near[0][0]):
            return None
        return F.refer(near[0][1])

    a = ans(f)
    if a is None:
        return None
    return Candidate("Relationship Questions", "closest", "Which object is closest to <region> at the end of the video?",
                     [f.id], a, _object_pool(F, f, rng, "no other object is in view"), ans)


def q_hidden_by(F, f, rng):
    none = "no object hides it"

    def ans(g):
        hid = [e for e in g.events if e.kind == "hidden" and e.obj == g.id]
        return F.refer(hid[0].other) if hid else none

    if _rarely_if_none(F, f, rng, ans, none):
        return None
    return Candidate("Relationship Questions", "hidden_by", "Which object hides <region>?", [f.id], ans(f),
                     _object_pool(F, f, rng, none), ans)


# --- Reasoning ----------------------------------------------------------------------------------------------
def _cause(F, g, e) -> str:
    if e.kind == "bounce":
        return f"hitting the {e.wall} wall"
    return f"colliding with {F.refer(e.other if e.obj == g.id else e.obj)}"


def q_turn_cause(F, f, rng):
    def ans(g):
        if g.static:
            return "nothing, it does not move"
        changes = F.direction_changes(g)
        if not changes:
            return "nothing, it keeps its direction"
        return _distinct_first(changes, lambda e: _cause(F, g, e))

    a = ans(f)
    if a is None:
        return None
    pool = [f"hitting the {w} wall" for w in WALLS] + [f"colliding with {F.refer(g.id)}" for g in _others(F, f)]
    pool += ["nothing, it keeps its direction", "nothing, it does not move", "its change of colour"]
    return Candidate("Reasoning Questions", "turn_cause", "What first makes <region> change direction?", [f.id], a,
                     pool, ans)


def q_vanish(F, f, rng):
    def ans(g):
        frames = set(g.visible_frames)
        gone = [t for t in range(1, F.T) if t - 1 in frames and t not in frames]
        if not gone:
            return None
        why = [e for e in g.events if e.frame == gone[0] and e.obj == g.id and e.kind in ("leave", "hidden")]
        if len(why) != 1:
            return None
        return "it leaves the frame" if why[0].kind == "leave" else f"it is hidden behind {F.refer(why[0].other)}"

    a = ans(f)
    if a is None:
        return None
    pool = ["it leaves the frame", "it turns the colour of the background", "it shrinks until it is gone"]
    pool += [f"it is hidden behind {F.refer(g.id)}" for g in _others(F, f)]
    return Candidate("Reasoning Questions", "vanish", "Why does <region> disappear from view?", [f.id], a, pool, ans)


def q_after_turn(F, f, rng):
    changes = F.direction_changes(f)
    phrases = [F.phrase(f, e) for e in changes]
    usable = [i for i, p in enumerate(phrases) if phrases.count(p) == 1
              and not any(e.frame == changes[i].frame for j, e in enumerate(f.events) if e is not changes[i])]
    if not usable:
        return None
    e = changes[usable[rng.integers(len(usable))]]
    a = f"it moves {L.direction(F.velocity(f.id, e.frame))}"
    pool = [f"it moves {d}" for d in L.DIRECTIONS] + ["it stops"]
    return Candidate("Reasoning Questions", "after_turn",
                     f"Which way does <region> move after it {F.phrase(f, e)}?", [f.id], a, pool)


# --- Future Predictions -------------------------------------------------------------------------------------
def q_next(F, f, rng):
    t = F.T - 1

    def ans(g):
        if g.boxes[t] is None:
            return None  # already out of view
        if g.future:
            first = _distinct_first(g.future, lambda e: F.phrase(g, e, future=True))
            return None if first is None else f"it {first}"
        if g.static:
            return "it will stay where it is"
        return f"it will keep moving {L.direction(F.velocity(g.id, t))}"

    a = ans(f)
    if a is None:
        return None
    pool = [f"it will bounce off the {w} wall" for w in WALLS]
    pool += [f"it will collide with {F.refer(g.id)}" for g in _others(F, f)]
    pool += [f"it will leave the frame on the {w}" for w in WALLS]
    pool += ["it will stay where it is"] + [f"it will keep moving {d}" for d in L.DIRECTIONS[::2]]
    return Candidate("Future Predictions", "next", "What will <region> do next, after the video ends?", [f.id], a,
                     pool, ans)


def q_where_next(F, f, rng):
    t = F.T + min(3, F.scene.future_frames - 1)
    S = F.size

    def ans(g):
        if g.boxes[F.T - 1] is None:
            return None
        if not F.r.amodal[g.id - 1, t].any():
            return "outside the frame"
        x, y = F.centre(g.id, t)
        near_line = min(abs(x - b) for b in (S / 3, 2 * S / 3)) < 2 or min(abs(y - b) for b in (S / 3, 2 * S / 3)) < 2
        return None if near_line else L.region_of((x, y), S)

    a = ans(f)
    if a is None:
        return None
    pool = [r for row in L.REGIONS for r in row] + ["outside the frame"]
    return Candidate("Future Predictions", "where_next", "Where will <region> be shortly after the video ends?",
                     [f.id], a, pool, ans)


TEMPLATES = [q_describe, q_colour, q_shape, q_motion, q_spin,
             q_first_event, q_after_event, q_colour_change, q_bounce_count,
             q_relative, q_collides_with, q_closest, q_hidden_by,
             q_turn_cause, q_vanish, q_after_turn,
             q_next, q_where_next]
