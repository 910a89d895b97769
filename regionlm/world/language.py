"""Words for RegionWorld facts: object names, directions, places, event phrases. Deterministic templates, so that
every annotation is a function of the ground truth alone."""

from __future__ import annotations

import math

DIRECTIONS = ("right", "down and to the right", "down", "down and to the left",
              "left", "up and to the left", "up", "up and to the right")
# A place in the frame, with its preposition: "It starts in the top left", "It ends on the right".
REGIONS = (("in the top left", "at the top", "in the top right"),
           ("on the left", "in the centre", "on the right"),
           ("in the bottom left", "at the bottom", "in the bottom right"))
COUNT_WORDS = ("never", "once", "twice", "three times", "four times", "five times")


def direction(v) -> str:
    """One of 8 compass words for a velocity (screen coordinates: y grows downwards)."""
    angle = math.degrees(math.atan2(v[1], v[0])) % 360
    return DIRECTIONS[int((angle + 22.5) // 45) % 8]


def region_of(centre, size: int) -> str:
    col = min(2, max(0, int(centre[0] / size * 3)))
    row = min(2, max(0, int(centre[1] / size * 3)))
    return REGIONS[row][col]


def name(size: str, colour: str, shape: str) -> str:
    return f"{size} {colour} {shape}"


def event_phrase(ev, refer, future: bool = False, subject_id: int | None = None) -> str:
    """The event as seen by `subject_id` (default ev.obj): 'bounces off the left wall' / 'will bounce ...'.
    `refer(obj_id)` names another object."""
    me = ev.obj if subject_id is None else subject_id
    other = ev.other if me == ev.obj else ev.obj
    present = {
        "bounce": lambda: f"bounces off the {ev.wall} wall",
        "collision": lambda: f"collides with {refer(other)}",
        "speed_up": lambda: "speeds up",
        "slow_down": lambda: "slows down",
        "colour_change": lambda: f"turns {ev.colour}",
        "enter": lambda: f"enters the frame from the {ev.wall}",
        "leave": lambda: f"leaves the frame on the {ev.wall}",
        "hidden": lambda: f"is hidden behind {refer(ev.other)}",
    }[ev.kind]()
    if not future:
        return present
    verb, _, rest = present.partition(" ")
    base = {"bounces": "bounce", "collides": "collide", "speeds": "speed", "slows": "slow", "turns": "turn",
            "enters": "enter", "leaves": "leave", "is": "be"}[verb]
    return f"will {base} {rest}".strip()


def count_word(n: int) -> str:
    return COUNT_WORDS[n] if n < len(COUNT_WORDS) else f"{n} times"


def capitalise(s: str) -> str:
    return s[:1].upper() + s[1:]
