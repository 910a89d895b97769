"""Scene sampling and physics: where every object is on every frame, and which events happen when.

Objects live on two layers. Objects on the same layer collide (elastic, equal mass; a static object is immovable);
an object on the upper layer passes over the lower one and hides it. Walls bounce objects back, except objects that
are set to leave the frame; objects that enter start outside and only meet the walls once fully inside.
The simulation runs `future_frames` past the video's end so that "what happens next" has a true answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .shapes import extent, inner_radius
from .spec import COLOURS, ROUND_SHAPES, SHAPES, SIZES, SPLIT_STREAM, WorldConfig


@dataclass
class ObjectSpec:
    id: int  # 1-based, stable within a video
    shape: str
    colour: str  # colour on the first frame
    size: str
    radius: float
    layer: int  # 0 ground, 1 upper
    static: bool
    spin: float  # degrees per frame, + = clockwise on screen
    enters: bool
    leaves: bool
    speed_change: tuple[int, float] | None = None  # (frame, factor)
    colour_change: tuple[int, str] | None = None  # (frame, new colour)


@dataclass
class Event:
    kind: str  # bounce | collision | speed_up | slow_down | colour_change | enter | leave | hidden
    frame: int
    obj: int
    other: int | None = None  # the other object (collision, hidden)
    wall: str | None = None  # bounce: the wall; enter/leave: the side
    colour: str | None = None  # colour_change: the new colour
    end: int | None = None  # hidden: last fully hidden frame

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Scene:
    """Everything that is true about one video, before rendering. Arrays span frames + future_frames."""

    video_id: str
    size: int
    num_frames: int
    future_frames: int
    background: dict
    objects: list[ObjectSpec]
    centres: np.ndarray  # (N, T + F, 2) x, y in pixels
    velocities: np.ndarray  # (N, T + F, 2) velocity used to go from frame t to t + 1
    angles: np.ndarray  # (N, T + F)
    colours: list[list[str]]  # [object][frame]
    events: list[Event] = field(default_factory=list)  # every event, future ones included

    def obj(self, obj_id: int) -> ObjectSpec:
        return self.objects[obj_id - 1]


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLIT_STREAM[split], index])


def annotation_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Annotation choices draw from their own stream, so changing a template never moves a scene."""
    return np.random.default_rng([seed, SPLIT_STREAM[split], index, 1])


def _sample_attributes(rng, n: int, split: str, cfg: WorldConfig) -> list[tuple[str, str, str]]:
    """(shape, colour, size) per object. Always one look-alike pair; holdout videos always hold a held-out combo."""
    holdout = sorted(cfg.holdout_combos)
    combos = [(s, c) for s in SHAPES for c in COLOURS]
    allowed = combos if split == "holdout" else [sc for sc in combos if (sc[1], sc[0]) not in cfg.holdout_combos]

    def pick():
        return allowed[rng.integers(len(allowed))]

    first = tuple(reversed(holdout[rng.integers(len(holdout))])) if split == "holdout" else pick()
    shape1, colour1 = first
    if rng.random() < cfg.p_same_shape_lookalike:
        second = (shape1, colour1)
    else:  # same colour, another shape (outside the hold-out unless this is the holdout split)
        shapes = [s for s, c in allowed if c == colour1 and s != shape1]
        second = (shapes[rng.integers(len(shapes))], colour1)
    pairs = [first, second] + [pick() for _ in range(n - 2)]
    sizes = list(SIZES)
    out = [(s, c, sizes[rng.integers(2)]) for s, c in pairs]
    order = rng.permutation(n)
    return [out[i] for i in order]


def _new_colour(rng, shape: str, old: str, split: str, cfg: WorldConfig) -> str:
    options = [c for c in COLOURS if c != old and (split == "holdout" or (c, shape) not in cfg.holdout_combos)]
    return options[rng.integers(len(options))]


def sample_scene(seed: int, split: str, index: int, cfg: WorldConfig) -> Scene:
    rng = scene_rng(seed, split, index)
    S, T, F = cfg.size, cfg.frames, cfg.future_frames
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    speed_scale = S / 64.0
    objects: list[ObjectSpec] = []
    for i, (shape, colour, size) in enumerate(_sample_attributes(rng, n, split, cfg)):
        static = rng.random() < cfg.p_static
        spin = 0.0
        if shape not in ROUND_SHAPES and rng.random() < cfg.p_spin:
            spin = float(rng.uniform(*cfg.spin_range) * rng.choice([-1, 1]))
        enters = (not static) and rng.random() < cfg.p_enter
        leaves = (not static) and rng.random() < cfg.p_leave
        o = ObjectSpec(i + 1, shape, colour, size, SIZES[size] * S, int(rng.random() < cfg.p_upper_layer),
                       static, spin, enters, leaves)
        if not static and rng.random() < cfg.p_speed_change:
            o.speed_change = (int(rng.integers(3, max(4, T - 3))), float(rng.choice([2.0, 0.4])))
        if rng.random() < cfg.p_colour_change:
            o.colour_change = (int(rng.integers(2, max(3, T - 2))), _new_colour(rng, shape, colour, split, cfg))
        objects.append(o)

    pos = np.zeros((n, 2))
    vel = np.zeros((n, 2))
    for o in objects:
        k = o.id - 1
        e = extent(o.shape, o.radius)
        speed = 0.0 if o.static else rng.uniform(*cfg.speed_range) * speed_scale
        for _attempt in range(50):  # keep same-layer objects apart at the start
            if o.enters:
                side = rng.integers(4)
                along = rng.uniform(e, S - e)
                # Just outside the frame on frame 0, heading in: it appears within a few frames.
                out = e + rng.uniform(0.2, 1.5) * max(speed, 1.0)
                p = np.array([[-out, along], [S + out, along], [along, -out], [along, S + out]][side])
                inward = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]][side], float)
                ang = rng.uniform(-0.6, 0.6)
                d = np.array([inward[0] * math.cos(ang) - inward[1] * math.sin(ang),
                              inward[0] * math.sin(ang) + inward[1] * math.cos(ang)])
            else:
                p = rng.uniform(e + 1, S - e - 1, size=2)
                a = rng.uniform(0, 2 * math.pi)
                d = np.array([math.cos(a), math.sin(a)])
            clash = any(
                q.layer == o.layer and np.linalg.norm(pos[q.id - 1] - p) < q.radius + o.radius + 2
                for q in objects[:k]
            )
            if not clash:
                break
        pos[k], vel[k] = p, d * speed

    if rng.random() < cfg.p_pass_behind:
        _set_up_pass_behind(rng, objects, pos, vel, cfg)

    N = T + F
    centres = np.zeros((n, N, 2))
    velocities = np.zeros((n, N, 2))
    angles = np.zeros((n, N))
    colours = [[o.colour] * N for o in objects]
    events: list[Event] = []
    inside = [not o.enters for o in objects]  # enterers meet the walls only once fully inside
    angle0 = rng.uniform(0, 360, size=n)
    for t in range(N):
        for o in objects:
            k = o.id - 1
            if o.speed_change and o.speed_change[0] == t:
                vel[k] *= o.speed_change[1]
                events.append(Event("speed_up" if o.speed_change[1] > 1 else "slow_down", t, o.id))
            if o.colour_change and o.colour_change[0] == t:
                events.append(Event("colour_change", t, o.id, colour=o.colour_change[1]))
            if o.colour_change and t >= o.colour_change[0]:
                colours[k][t] = o.colour_change[1]
        centres[:, t] = pos
        velocities[:, t] = vel
        angles[:, t] = angle0 + np.array([o.spin for o in objects]) * t
        if t == N - 1:
            break
        # Move, then resolve walls and collisions; events are stamped on the frame where they are first seen.
        pos = pos + vel
        for o in objects:
            k = o.id - 1
            e = extent(o.shape, o.radius)
            lo, hi = pos[k] - e, pos[k] + e
            if not inside[k]:
                inside[k] = bool(np.all(lo >= 0) and np.all(hi <= S))
                continue
            if o.leaves:
                continue
            for axis, (low_wall, high_wall) in enumerate((("left", "right"), ("top", "bottom"))):
                if lo[axis] < 0 and vel[k, axis] < 0:
                    vel[k, axis] *= -1
                    events.append(Event("bounce", t + 1, o.id, wall=low_wall))
                elif hi[axis] > S and vel[k, axis] > 0:
                    vel[k, axis] *= -1
                    events.append(Event("bounce", t + 1, o.id, wall=high_wall))
        for a in objects:
            for b in objects[a.id:]:
                if a.layer != b.layer or (a.static and b.static):
                    continue
                i, j = a.id - 1, b.id - 1
                delta = pos[j] - pos[i]
                dist = float(np.linalg.norm(delta))
                if dist >= a.radius + b.radius or dist == 0:
                    continue
                nrm = delta / dist
                approach = float(np.dot(vel[i] - vel[j], nrm))
                if approach <= 0:
                    continue
                if a.static:
                    vel[j] -= 2 * np.dot(vel[j], nrm) * nrm
                elif b.static:
                    vel[i] -= 2 * np.dot(vel[i], nrm) * nrm
                else:  # equal masses: exchange the normal components
                    vel[i] -= approach * nrm
                    vel[j] += approach * nrm
                events.append(Event("collision", t + 1, a.id, other=b.id))
    background = _sample_background(rng, cfg)
    events.sort(key=lambda ev: (ev.frame, ev.obj, ev.kind))
    return Scene(f"{index:06d}", S, T, F, background, objects, centres, velocities, angles, colours, events)


def _sample_background(rng, cfg: WorldConfig) -> dict:
    base = [int(v) for v in rng.integers(15, 75, size=3)]
    if rng.random() < cfg.p_textured_background:
        kind = ["noise", "stripes", "checker"][rng.integers(3)]
        return {"kind": kind, "base": base, "contrast": int(rng.integers(12, 30)),
                "period": int(rng.integers(6, 16)), "seed": int(rng.integers(2**31))}
    return {"kind": "plain", "base": base}


def _set_up_pass_behind(rng, objects: list[ObjectSpec], pos: np.ndarray, vel: np.ndarray, cfg: WorldConfig) -> None:
    """Make full occlusion happen: put a large covering object (upper layer) where a small one (lower layer)
    will be a few frames in. Paths are straight-line guesses; walls and collisions may still spoil it."""
    S = cfg.size
    large, small = SIZES["large"] * S, SIZES["small"] * S
    pairs = [(a, b) for a in objects for b in objects
             if a is not b and not a.enters and not b.enters and not (a.static and b.static)
             and inner_radius(b.shape, large) - extent(a.shape, small) >= 1.5]
    if not pairs:
        return
    a, b = pairs[rng.integers(len(pairs))]
    a.size, a.radius, a.layer = "small", small, 0
    b.size, b.radius, b.layer = "large", large, 1
    i, j = a.id - 1, b.id - 1
    eb = extent(b.shape, large)
    for _attempt in range(10):
        k = int(rng.integers(2, max(3, min(8, cfg.frames - 3))))
        meet = pos[i] + vel[i] * k
        start = meet - vel[j] * k
        if np.all(meet > eb) and np.all(meet < S - eb) and np.all(start > eb) and np.all(start < S - eb):
            pos[j] = start
            return
