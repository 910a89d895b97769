"""Per-object facts read off a simulated and rendered scene: what annotations are generated from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..regions import mask_to_box
from . import language as L
from .render import Rendering, pixel_events
from .shapes import extent, shape_mask
from .simulate import Event, Scene

# shares of the whole shape seen (ObjectFacts.seen): where a track may start, and the frames a REG/REC example
# shows its object on
WELL_VISIBLE = 0.5
CLEAR_VIEW = 0.6


@dataclass
class ObjectFacts:
    id: int
    shape: str
    size: str
    colour: str  # when it first appears
    final_colour: str
    spin: float
    static: bool
    layer: int
    visible_frames: list[int]  # rendered frames where any pixel is seen
    boxes: list  # per rendered frame: amodal box clipped to the frame (xyxy, exclusive), None when out of frame
    visibility: list[float]  # per rendered frame: visible pixels / in-frame shape pixels
    in_frame: list[float]  # per rendered frame: in-frame shape pixels / whole shape pixels
    events: list[Event]  # its events within the video, in order (collisions of both parties)
    future: list[Event]  # its events after the end

    @property
    def first(self) -> int:
        return self.visible_frames[0]

    def seen(self, t: int) -> float:
        """The share of the whole shape seen on frame t (neither hidden nor out of the frame)."""
        return self.visibility[t] * self.in_frame[t]

    @property
    def name(self) -> str:
        return L.name(self.size, self.colour, self.shape)


def _whole_shape_pixels(o, centre, angle: float) -> int:
    """Pixels of the shape drawn whole on a canvas it fits in, at the same sub-pixel offset and angle as in the
    frame (a small shape's pixel count changes by 10% and more with both)."""
    half = int(extent(o.shape, o.radius)) + 2
    cx, cy = half + float(centre[0]) % 1.0, half + float(centre[1]) % 1.0
    return max(1, int(shape_mask(o.shape, cx, cy, o.radius, angle, 2 * half + 1, 2 * half + 1).sum()))


class Facts:
    def __init__(self, scene: Scene, r: Rendering):
        self.scene, self.r = scene, r
        self.T, self.size = scene.num_frames, scene.size
        self.events = sorted(scene.events + pixel_events(scene, r), key=lambda e: (e.frame, e.obj, e.kind))
        seen = r.visible[:, : self.T].any(axis=(2, 3))
        amodal_px = r.amodal[:, : self.T].sum(axis=(2, 3))
        visible_px = r.visible[:, : self.T].sum(axis=(2, 3))
        self.objects: dict[int, ObjectFacts] = {}
        for k, o in enumerate(scene.objects):
            frames = [int(t) for t in np.flatnonzero(seen[k])]
            boxes = [mask_to_box(r.amodal[k, t]) for t in range(self.T)]
            vis = [float(visible_px[k, t] / amodal_px[k, t]) if amodal_px[k, t] else 0.0 for t in range(self.T)]
            # a shape whose box does not touch the frame's edge is whole in the frame (1.0, checked exactly)
            in_frame = [1.0 if b and 0 < b[0] and 0 < b[1] and b[2] < self.size and b[3] < self.size
                        else min(1.0, float(amodal_px[k, t]) / _whole_shape_pixels(o, scene.centres[k, t],
                                                                                    float(scene.angles[k, t])))
                        for t, b in enumerate(boxes)]
            mine = [e for e in self.events if o.id in (e.obj, e.other if e.kind == "collision" else None)]
            first = frames[0] if frames else 0
            self.objects[o.id] = ObjectFacts(
                o.id, o.shape, o.size, scene.colours[k][first], scene.colours[k][self.T - 1], o.spin, o.static,
                o.layer, frames, [list(b) if b else None for b in boxes], vis, in_frame,
                [e for e in mine if e.frame < self.T], [e for e in mine if e.frame >= self.T])
        self.present = [f for f in self.objects.values() if f.visible_frames]
        self._refexp = {f.id: self._unique_expression(f) for f in self.present}

    # --- geometry -------------------------------------------------------------------------------------------
    def centre(self, obj_id: int, t: int) -> np.ndarray:
        return self.scene.centres[obj_id - 1, t]

    def velocity(self, obj_id: int, t: int) -> np.ndarray:
        return self.scene.velocities[obj_id - 1, t]

    def motion_at_start(self, f: ObjectFacts) -> str:
        v = self.velocity(f.id, f.first)
        return "it stays still" if np.linalg.norm(v) < 1e-6 else f"it moves {L.direction(v)}"

    def direction_changes(self, f: ObjectFacts) -> list[Event]:
        # A static object is never moved, not even by a collision.
        return [] if f.static else [e for e in f.events if e.kind in ("bounce", "collision")]

    # --- names ----------------------------------------------------------------------------------------------
    def lookalike(self, f: ObjectFacts) -> ObjectFacts | None:
        """Another object that looks like f: same shape and colour if there is one, else the same colour."""
        same = [g for g in self.present if g.id != f.id and g.colour == f.colour]
        best = [g for g in same if g.shape == f.shape]
        return (best or same or [None])[0]

    def _unique_expression(self, f: ObjectFacts) -> str | None:
        def motion(g):
            return "stays still" if g.static else f"starts moving {L.direction(self.velocity(g.id, g.first))}"

        def place(g):
            return L.region_of(self.centre(g.id, g.first), self.size)

        describers = [
            lambda g: f"the {g.colour} {g.shape}",
            lambda g: f"the {g.size} {g.colour} {g.shape}",
            lambda g: f"the {g.colour} {g.shape} that {motion(g)}",
            lambda g: f"the {g.size} {g.colour} {g.shape} that {motion(g)}",
            lambda g: f"the {g.colour} {g.shape} that first appears {place(g)}",
        ]
        for describe in describers:
            mine = describe(f)
            if all(describe(g) != mine for g in self.present if g.id != f.id):
                return mine
        return None

    def expression(self, obj_id: int) -> str | None:
        """A referring expression that fits this object and no other in the video, or None."""
        return self._refexp.get(obj_id)

    def refer(self, obj_id: int) -> str:
        """A name for another object inside a sentence: unique when possible."""
        return self._refexp.get(obj_id) or f"the {self.objects[obj_id].name}"

    def phrase(self, f: ObjectFacts, e: Event, future: bool = False) -> str:
        return L.event_phrase(e, self.refer, future=future, subject_id=f.id)

    # --- masks ----------------------------------------------------------------------------------------------
    def visible_mask(self, obj_id: int, t: int) -> np.ndarray:
        return self.r.visible[obj_id - 1, t]
