"""The pointer tracker: a small head that points at a tracked object on each frame, on a RegionLM's own features.

Why: a RegionLM that writes boxes as text (Elysium's protocol) tracks no better than repeating its first box here,
yet its vision features say where the object went (docs/RESULTS.md, "The tokens say where the object went"). The
pointer head reads that out directly. On each later frame it scores every patch of the vision tower's grid

    score(k) = (A q) . (B x_k) / sqrt(r) + u . x_k - c d_k^2

q: the object as it was given (the frame-0 patches under the first box, averaged) and, with ``template``, as it was
last seen (the patches under the box on the frame before); d_k: the distance of patch k from where the object is
expected (its last place moved by its velocity, ``prior="velocity"``, or its last place). The box moves to the
mean of the patches' centres weighted by the softmax of the scores, over a ``window`` around the best one: the
centre of the object's seen part. The box keeps its first size (an object the frame's edge cuts on the first frame
is guessed whole from the fit set's median aspect), is put where its seen part is centred there, and is given in
whole pixels. About 54k weights (12k without the ``adapter``, a 3 x 3 convolution over each frame's grid that
lets a patch be scored with its neighbours), fitted on the frozen model's features of RegionWorld tracking sequences
(regionlm.model.pointer_fit), by default tracking them from its own guesses as it will be used
(``training="rollout"``); it ships beside the model's weights as ``pointer_head.safetensors``, and
``RegionLMSystem(sot_mode="point")`` (the default ``"auto"`` when the file is there) tracks with it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RegionLMError
from ..regions import box_xywh_to_xyxy
from .connectors import cell_centres as grid_cell_centres

POINTER_FILE = "pointer_head.safetensors"
PRIORS = ("last", "velocity")
TRAININGS = ("teacher", "rollout")
EDGE = 1e-3  # a box side this near the frame's edge (a fraction of its side) touches it (point_track: a pixel)


@dataclass
class PointerConfig:
    rank: int = 32           # of the query-patch match
    template: bool = True    # also query with the patches under the box on the frame before
    prior: str = "velocity"  # where the place prior is centred: "last" place or the last place + the last step
    noise: float = 0.02      # training: the prior's centre and the template's box are jittered by this (frame sides)
    centre_weight: float = 1.0  # training: weight of the centre's pixel error (px, L1) beside the cross-entropy
    training: str = "rollout"  # "rollout": fitted on its own guesses (follow); "teacher": on the truth before
    smoothing: float = 0.7   # the velocity: the last step averaged with the earlier ones by this weight
    stitch: bool = False     # a grid of patches twice as fine each way (grid_features)
    window: int = 3          # the place: the mean of the cells within this many of the most likely one (0: of all
                             # cells, which lands between two look-alikes the head hesitates on)
    adapter: int = 32        # width of a 3 x 3 convolution over each frame's grid whose output is added to the
                             # features before they are scored: each patch sees its neighbours (0: none)

    def validate(self) -> None:
        if self.prior not in PRIORS:
            raise RegionLMError(f"pointer prior must be one of {PRIORS}, got {self.prior!r}")
        if self.training not in TRAININGS:
            raise RegionLMError(f"pointer training must be one of {TRAININGS}, got {self.training!r}")
        if not 0 <= self.smoothing < 1:
            raise RegionLMError(f"pointer smoothing must be in [0, 1), got {self.smoothing}")
        if self.rank < 1:
            raise RegionLMError(f"pointer rank must be at least 1, got {self.rank}")
        if self.adapter < 0:
            raise RegionLMError(f"pointer adapter must be 0 (none) or a width, got {self.adapter}")


class GridAdapter(nn.Sequential):
    """A 3 x 3 convolution over square grids of patch features (dim -> width -> dim), whose output is added to
    them: each patch seen with its neighbours (an object's outline, what lies beside it). Zero-initialised, so it
    starts as no change. (A Sequential, so that its weights keep the names of the heads' files.)"""

    def __init__(self, dim: int, width: int):
        super().__init__(nn.Conv2d(dim, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, dim, 1))
        nn.init.zeros_(self[2].weight)
        nn.init.zeros_(self[2].bias)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """(..., P, D) patches of square grids -> the same with the convolution's output added."""
        *lead, p, d = x.shape
        g = int(round(math.sqrt(p)))
        grids = x.reshape(-1, g, g, d).permute(0, 3, 1, 2)
        return (grids + self(grids)).permute(0, 2, 3, 1).reshape(*lead, p, d)


class PointerHead(nn.Module):
    """The score of each patch (the module docstring's formula); ``dim``: the vision features' width."""

    def __init__(self, dim: int, config: PointerConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.a = nn.Linear(dim * (2 if config.template else 1), config.rank)
        self.b = nn.Linear(dim, config.rank)
        self.u = nn.Linear(dim, 1)
        self.c = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("mean", torch.zeros(dim))  # the features' mean and std over the fit set
        self.register_buffer("std", torch.ones(dim))
        # the median width / height of the fit set's boxes seen whole: how wide an object whose first box the
        # frame's edge cuts is guessed to be (0: no guess, the box keeps the size it is given)
        self.register_buffer("aspect", torch.tensor(0.0))
        self.adapter = GridAdapter(dim, config.adapter) if config.adapter else None

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        """(..., P, D) standardised patches of square grids -> the same with the adapter's output added."""
        return x if self.adapter is None else self.adapter.residual(x)

    def forward(self, query: torch.Tensor, x: torch.Tensor, dist2: torch.Tensor) -> torch.Tensor:
        """query (N, Q), standardised patches x (N, P, D), squared distances from the expected place (N, P) ->
        logits (N, P)."""
        # (A q + a0) . (B x + b0) + u . x + u0 as one vector per query dotted with the patches: the same sum,
        # without mapping every patch to rank r (the cost of a fit step is then the dot product alone)
        aq = self.a(query) / math.sqrt(self.config.rank)
        w = aq @ self.b.weight + self.u.weight                                  # (N, D)
        const = aq @ self.b.bias + self.u.bias                                  # (N,)
        return torch.einsum("nd,npd->np", w, x) + const[:, None] - F.softplus(self.c) * 100 * dist2


# ---------------------------------------------------------------------------------------------- the grid


def grid_features(model, pixels: torch.Tensor, stitch: bool = False, chunk: int = 64) -> torch.Tensor:
    """(B, T, 3, S, S) normalised pixels -> (B, T, P, D) float32 vision features, P = grid cells row by row.

    ``stitch``: a grid twice as fine each way (shift and stitch): the tower also sees each frame shifted by a
    quarter of a patch each way, so that its patches' centres fall half a patch apart."""
    b, t = pixels.shape[:2]
    flat = pixels.flatten(0, 1)

    def tower(frames):
        parts = []
        with torch.no_grad():
            for i in range(0, len(frames), chunk):
                f = model.vision_features(frames[i:i + chunk, None].to(model.device, model.dtype))  # (n, 1, g, g, D)
                parts.append(f[:, 0].float().cpu())  # the head runs on the CPU: a few thousand weights
        return torch.cat(parts)  # (n, g, g, D)

    if not stitch:
        out = tower(flat)
    else:
        q = model.config.vision_config.patch_size // 4
        if q < 1:
            raise RegionLMError("pointer stitch needs a vision patch of at least 4 pixels")
        size = flat.shape[-1]
        grids = {}
        for dy in (-q, q):
            rows = (torch.arange(size) + dy).clamp(0, size - 1)  # the frame moved by dy, its edge repeated
            for dx in (-q, q):
                cols = (torch.arange(size) + dx).clamp(0, size - 1)
                grids[dy > 0, dx > 0] = tower(flat[:, :, rows][:, :, :, cols])
        g = grids[False, False].shape[1]
        out = flat.new_empty(len(flat), 2 * g, 2 * g, grids[False, False].shape[-1])
        for (down, right), f in grids.items():  # a patch seen shifted by +q sits half a patch after one by -q
            out[:, int(down)::2, int(right)::2] = f
    return out.reshape(b, t, -1, out.shape[-1])


def cell_centres(g: int) -> torch.Tensor:
    """(g*g, 2): each cell's centre (x, y) as a fraction of the frame, row by row."""
    return grid_cell_centres(1, 1, g, g, "cpu", torch.float32).reshape(-1, 2)


def box_cover(boxes: torch.Tensor, g: int) -> torch.Tensor:
    """(..., 4) xyxy boxes as fractions of the frame -> (..., g*g): the share of each cell the box covers."""
    edges = torch.arange(g, dtype=torch.float32, device=boxes.device) / g

    def overlap(lo, hi):  # (...,) -> (..., g): the length of [lo, hi] inside each cell, in cell widths
        return (torch.minimum(hi[..., None], edges + 1 / g) - torch.maximum(lo[..., None], edges)).clamp(min=0) * g

    ox, oy = overlap(boxes[..., 0], boxes[..., 2]), overlap(boxes[..., 1], boxes[..., 3])
    return (oy[..., :, None] * ox[..., None, :]).flatten(-2)


def pooled(x: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
    """(N, P, D), (N, P) -> (N, D): the patches averaged over the cover."""
    return (x * cover[..., None]).sum(-2) / cover.sum(-1, keepdim=True).clamp(min=1e-6)


def moved(box: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """(..., 4) xyxy boxes moved so their centres are ``centre`` (..., 2)."""
    half = (box[..., 2:] - box[..., :2]) / 2
    return torch.cat([centre - half, centre + half], dim=-1)


def box_centre(box: torch.Tensor) -> torch.Tensor:
    return (box[..., :2] + box[..., 2:]) / 2


def touches_edge(box: torch.Tensor, edge=EDGE) -> tuple:
    """(..., 4) xyxy boxes (fractions of the frame) -> (cut across x, cut across y): a side within ``edge`` (a
    fraction of the frame, one for both axes or (x, y)) of the frame's edge is where the frame cuts the object."""
    ex, ey = (edge, edge) if isinstance(edge, (int, float)) else edge
    return ((box[..., 0] <= ex) | (box[..., 2] >= 1 - ex)), ((box[..., 1] <= ey) | (box[..., 3] >= 1 - ey))


def full_size(box: torch.Tensor, aspect: float, edge=EDGE) -> torch.Tensor:
    """(..., 4) xyxy boxes (fractions of the frame) -> (..., 2) the whole object's width and height: a box the
    frame's edge cuts across one side only (touches_edge) is the seen part of a larger object, guessed to be at
    least ``aspect`` times as wide as it is tall (1 / ``aspect`` times as tall, for a cut above or below); 0: the
    box as given."""
    size = box[..., 2:] - box[..., :2]
    if aspect <= 0:
        return size
    cut_x, cut_y = touches_edge(box, edge)
    w, h = size.unbind(-1)
    return torch.stack([torch.where(cut_x & ~cut_y, torch.maximum(w, aspect * h), w),
                        torch.where(cut_y & ~cut_x, torch.maximum(h, w / aspect), h)], -1)


def placed(place: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """(..., 2) places, (..., 2) sizes (fractions of the frame) -> (..., 4) xyxy boxes of that size whose part
    inside the frame is centred at the place (the head points at the centre of what is seen, as it was fitted:
    near an edge the whole box lies further out)."""
    half = size / 2
    # the seen part of [c - half, c + half] is centred at (max(c - half, 0) + c + half) / 2 near the left edge:
    # solved for c; the same at the right edge; a box wider than the frame stays centred
    c = torch.where(place < half, 2 * place - half, torch.where(place > 1 - half, 2 * place - 1 + half, place))
    c = torch.where(size >= 1, place, c)
    return torch.cat([c - half, c + half], -1)


def xyxy_fractions(xywh, width: int, height: int) -> torch.Tensor:
    """(..., 4) [x, y, w, h] pixel boxes -> xyxy boxes as fractions of a width x height frame."""
    xyxy = box_xywh_to_xyxy(np.asarray(xywh, np.float32))
    return torch.from_numpy(xyxy) / torch.tensor([width, height, width, height], dtype=torch.float32)


# ---------------------------------------------------------------------------------------------- tracking


def point_step(head: PointerHead, centres, q0, x_prev, x_cur, box, place, velocity, noise: float = 0.0,
               gen: Optional[torch.Generator] = None):
    """One frame for a batch of N tracks: centres (P, 2) the grid's cell centres (cell_centres), q0 (N, D) the
    object on frame 0, x_prev / x_cur (N, P, D) standardised patches of the frame before and this one, box (N, 4)
    the box on the frame before (xyxy fractions), place (N, 2) its centre, velocity (N, 2) the object's step per
    frame as known. -> logits (N, P) over this frame's patches. ``noise`` (training) jitters the prior's centre
    and the template's box."""
    g = int(round(math.sqrt(len(centres))))
    last = place
    if noise:
        last = place + torch.randn(place.shape, generator=gen).to(place.device) * noise
    expected = last + velocity if head.config.prior == "velocity" else last
    query = q0
    if head.config.template:
        query = torch.cat([q0, pooled(x_prev, box_cover(moved(box, last), g))], -1)
    return head(query, x_cur, (centres - expected[:, None]).pow(2).sum(-1))


def follow(head: PointerHead, x: torch.Tensor, first: torch.Tensor, noise: float = 0.0,
           gen: Optional[torch.Generator] = None) -> tuple:
    """Track N objects through their frames: x (N, T, P, D) standardised patches (the head's adapter is applied
    here), first (N, 4) the boxes on frame 0 (xyxy fractions) -> (logits (N, T-1, P) of frames 1.., centres
    (N, T, 2) pointed at, frame 0's the first box's). Each frame's prior and template come from where the track
    pointed on the frames before; its velocity is the last step, averaged with the earlier ones by
    ``config.smoothing``."""
    g = int(round(math.sqrt(x.shape[2])))
    centres = cell_centres(g).to(x.device)
    x = head.adapt(x)
    q0 = pooled(x[:, 0], box_cover(first, g))
    box, place = first, box_centre(first)
    velocity, logits, places, m = torch.zeros_like(place), [], [place], head.config.smoothing
    for f in range(1, x.shape[1]):
        logits.append(point_step(head, centres, q0, x[:, f - 1], x[:, f], box, place, velocity, noise, gen))
        # no gradient through the guesses: back-propagating through every frame diverged (rollout training)
        pointed = pointed_place(logits[-1].softmax(-1).detach(), centres, head.config.window)
        velocity = pointed - place if f == 1 else m * velocity + (1 - m) * (pointed - place)
        place = pointed
        box = moved(first, place)
        places.append(place)
    empty = x.new_zeros(len(x), 0, x.shape[2])
    return (torch.stack(logits, 1) if logits else empty), torch.stack(places, 1)


def pointed_place(p: torch.Tensor, centres: torch.Tensor, window: int = 0) -> torch.Tensor:
    """(N, P) shares of the grid's cells (P, 2 centres) -> (N, 2) their mean place, over the cells within
    ``window`` cells of the most likely one (0: over all)."""
    if window <= 0:
        return p @ centres
    g = int(round(math.sqrt(p.shape[1])))
    peak = p.argmax(-1)
    cells = torch.arange(p.shape[1], device=p.device)
    rows, cols = cells // g, cells % g
    near = ((rows - (peak // g)[:, None]).abs() <= window) & ((cols - (peak % g)[:, None]).abs() <= window)
    p = p * near
    return p @ centres / p.sum(-1, keepdim=True)


def frame_reader(frames) -> tuple:
    """(n, height, width, get(start, stop) -> those frames) of an (T, H, W, 3) uint8 array or an
    inference.FrameSource."""
    if isinstance(frames, np.ndarray):
        return len(frames), frames.shape[1], frames.shape[2], lambda start, stop: frames[start:stop]
    return frames.num_frames, frames.height, frames.width, lambda start, stop: frames.get(list(range(start, stop)))


def track_features(model, head: PointerHead, frames, chunk: int = 64) -> torch.Tensor:
    """(T, P, D) the head's standardised features of every frame of ``frames`` (see frame_reader), read and
    encoded ``chunk`` frames at a time, so a long video is never held whole; only its small features are."""
    from .processing import pixel_values

    n, _, _, get = frame_reader(frames)
    with torch.no_grad():
        x = torch.cat([grid_features(model, torch.from_numpy(pixel_values([get(i, min(i + chunk, n))], model.config)),
                                     head.config.stitch)[0] for i in range(0, n, chunk)])
    return head.standardise(x)


def follow_box(head: PointerHead, x: torch.Tensor, init_box: Sequence[float], width: int, height: int) -> list:
    """[x, y, w, h] pixel boxes on every frame of ``x`` (track_features) from ``init_box`` on the first: each
    later frame's box is of the first box's size (guessed whole when the frame's edge cuts it, full_size), put so
    that its part inside the frame is centred where the head points (placed), in whole pixels, cut to the frame (a
    box is what is seen)."""
    first = [float(v) for v in init_box]
    with torch.no_grad():
        box0 = xyxy_fractions([first], width, height)
        _, places = follow(head, x[None], box0)
        size = full_size(box0, float(head.aspect), (1 / width, 1 / height))  # a side within a pixel of the edge
        boxes = placed(places[0, 1:], size) * torch.tensor([width, height, width, height])
    # whole pixels, as boxes of what is seen are (the truth of every tracking benchmark)
    return [first] + [seen_part(x1, y1, x2 - x1, y2 - y1, width, height)
                      for x1, y1, x2, y2 in boxes.round().tolist()]


def point_track(model, head: PointerHead, frames, init_box: Sequence[float], chunk: int = 64,
                outline=None) -> list:
    """[x, y, w, h] pixel boxes on every frame of ``frames`` ((T, H, W, 3) uint8, or an inference.FrameSource)
    from the box on the first, as the pointer head follows it (follow_box; frames encoded ``chunk`` at a time).
    ``outline`` (an outline.OutlineConfig): each later box is then the object's outline around it
    (regionlm.model.outline), read in a second pass."""
    n, h, w, get = frame_reader(frames)
    out = follow_box(head, track_features(model, head, frames, chunk), init_box, w, h)
    if outline is not None:
        from .outline import outline_track

        out = outline_track(get, n, out, outline, chunk=chunk)
    return out


def seen_part(x: float, y: float, bw: float, bh: float, w: int, h: int) -> list:
    """The part of the [x, y, bw, bh] box inside a w x h frame (the box as it is when nothing of it is)."""
    x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + bw, float(w)), min(y + bh, float(h))
    return [x1, y1, x2 - x1, y2 - y1] if x2 > x1 and y2 > y1 else [x, y, bw, bh]


# ---------------------------------------------------------------------------------------------- files


def write_head(head: nn.Module, folder, name: str, meta: Optional[dict] = None) -> Path:
    """Write a head fitted on a model's features into its folder as ``name`` (safetensors; its config, its
    features' width, ``meta`` and the fingerprint of the weights it was fitted on in the metadata; temp file, then
    rename)."""
    from safetensors.torch import save_file

    from .inference import weights_fingerprint

    path = Path(folder) / name
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().contiguous() for k, v in head.state_dict().items()}
    info = {"config": json.dumps(asdict(head.config)), "dim": str(head.b.in_features),
            "weights": weights_fingerprint(folder)}
    save_file(state, str(tmp), metadata={**info, **{k: str(v) for k, v in (meta or {}).items()}})
    tmp.replace(path)
    return path


def read_head(folder, name: str, build, defaults: Optional[dict] = None) -> Optional[nn.Module]:
    """The head ``name`` of a model folder (``build(metadata)``: the module, its config parsed), or None when
    there is none. One fitted on other weights than the folder's (the model trained again since) is refused: it
    would read features it has never seen. ``defaults``: buffers an older file lacks."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from .inference import weights_fingerprint

    path = Path(folder) / name
    if not path.exists():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        head = build({**meta, "config": json.loads(meta["config"])})
        state = load_file(str(path))
        for k, v in (defaults or {}).items():
            state.setdefault(k, v)
        head.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as e:
        raise RegionLMError(f"{path}: not a {name.split('.')[0].replace('_', ' ')} "
                            f"({str(e).splitlines()[0]})") from None
    if meta.get("weights") != weights_fingerprint(folder):
        raise StalePointer(f"{path} was fitted on other weights than the model's in {folder} (trained again?): fit "
                           f"it again (regionlm fit-pointer --data TRACKING_DATA --model {folder}) or remove it")
    return head.eval()


def save_pointer(head: PointerHead, folder) -> Path:
    """Write the pointer head into a model folder (write_head)."""
    return write_head(head, folder, POINTER_FILE)


def load_pointer(folder) -> Optional[PointerHead]:
    """The pointer head of a model folder, or None when it has none (read_head: one fitted on other weights is
    refused)."""
    # a head fitted before the aspect guess: boxes kept as given
    return read_head(folder, POINTER_FILE, lambda meta: PointerHead(int(meta["dim"]), PointerConfig(**meta["config"])),
                     defaults={"aspect": torch.tensor(0.0)})


class StalePointer(RegionLMError):
    """A head (pointer, refer) fitted on other weights than its folder's."""
