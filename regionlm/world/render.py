"""Rendering a Scene: RGB frames, exact amodal and visible masks, and the events only pixels can tell
(entering and leaving the frame, being fully hidden behind another object)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .shapes import shape_mask
from .simulate import Event, Scene
from .spec import COLOURS


@dataclass
class Rendering:
    frames: np.ndarray  # (T, H, W, 3) uint8, rendered frames only
    amodal: np.ndarray  # (N, T + F, H, W) bool: the whole shape, clipped to the frame
    visible: np.ndarray  # (N, T + F, H, W) bool: what is seen after occlusion


def draw_order(scene: Scene) -> list[int]:
    """Object indices back to front: lower layer first, then by id."""
    return sorted(range(len(scene.objects)), key=lambda k: (scene.objects[k].layer, k))


def render_masks(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    S, N = scene.size, scene.centres.shape[1]
    n = len(scene.objects)
    amodal = np.zeros((n, N, S, S), bool)
    buf = np.zeros((S, S), np.uint8)
    for k, o in enumerate(scene.objects):
        for t in range(N):
            cx, cy = scene.centres[k, t]
            amodal[k, t] = shape_mask(o.shape, cx, cy, o.radius, scene.angles[k, t], S, S, out=buf)
    visible = amodal.copy()
    covered = np.zeros((N, S, S), bool)
    for k in reversed(draw_order(scene)):  # front to back
        visible[k] &= ~covered
        covered |= amodal[k]
    return amodal, visible


def background_image(bg: dict, size: int) -> np.ndarray:
    base = np.array(bg["base"], np.float32)
    img = np.broadcast_to(base, (size, size, 3)).astype(np.float32)
    if bg["kind"] == "plain":
        return img
    rng = np.random.default_rng(bg["seed"])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if bg["kind"] == "noise":
        cells = max(2, size // bg["period"])
        pattern = cv2.resize(rng.uniform(-1, 1, (cells, cells)).astype(np.float32), (size, size),
                             interpolation=cv2.INTER_CUBIC)
    elif bg["kind"] == "stripes":
        theta = rng.uniform(0, np.pi)
        pattern = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / bg["period"])
    else:  # checker
        pattern = ((xx // bg["period"] + yy // bg["period"]) % 2) * 2 - 1.0
    tint = rng.uniform(0.5, 1.0, 3).astype(np.float32)
    return img + pattern[..., None] * tint * bg["contrast"]


def render(scene: Scene, noise_std: float = 4.0) -> Rendering:
    amodal, visible = render_masks(scene)
    T, S = scene.num_frames, scene.size
    bg = background_image(scene.background, S)
    frames = np.repeat(bg[None], T, 0)
    for k in draw_order(scene):
        for t in range(T):
            frames[t][visible[k, t]] = COLOURS[scene.colours[k][t]]
    if scene.background["kind"] != "plain" and noise_std > 0:
        rng = np.random.default_rng(scene.background["seed"] + 1)
        frames += rng.normal(0, noise_std, frames.shape).astype(np.float32)
    return Rendering(np.clip(frames, 0, 255).astype(np.uint8), amodal, visible)


def _side(centre: np.ndarray, size: int) -> str:
    x, y = centre
    dists = {"left": x, "right": size - x, "top": y, "bottom": size - y}
    return min(dists, key=dists.get)


def pixel_events(scene: Scene, r: Rendering) -> list[Event]:
    """enter / leave / hidden events, from the masks of every simulated frame (future included)."""
    events = []
    in_frame = r.amodal.any(axis=(2, 3))  # (N, T + F)
    seen = r.visible.any(axis=(2, 3))
    order = draw_order(scene)
    for k, o in enumerate(scene.objects):
        for t in range(1, in_frame.shape[1]):
            if in_frame[k, t] and not in_frame[k, t - 1]:
                events.append(Event("enter", t, o.id, wall=_side(scene.centres[k, t], scene.size)))
            if in_frame[k, t - 1] and not in_frame[k, t]:
                events.append(Event("leave", t, o.id, wall=_side(scene.centres[k, t - 1], scene.size)))
        hidden = in_frame[k] & ~seen[k]
        t = 0
        while t < len(hidden):
            if not hidden[t]:
                t += 1
                continue
            end = t
            while end + 1 < len(hidden) and hidden[end + 1]:
                end += 1
            above = order[order.index(k) + 1:]
            cover = [(int((r.amodal[j, t] & r.amodal[k, t]).sum()), j) for j in above]
            occluder = max(cover)[1]
            events.append(Event("hidden", t, o.id, other=scene.objects[occluder].id, end=end))
            t = end + 1
    return events
