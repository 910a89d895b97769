"""Finding the object an expression names on a frame: the refer head, then the model's own pick.

Why: asked to write the boxes of "the small red star" as text (Elysium's referring tracking), the model writes
``[0,0,k,k]`` whatever the video (world-rsot AUC 4.8): it never learned to turn words into coordinates. Its vision
features and its word embeddings say enough to find the object, read out as the pointer head reads out where a
tracked object went (regionlm.model.pointer). On the first frame the refer head scores every patch of the vision
tower's grid

    score(k) = (A e) . (B x_k) / sqrt(r) + u . x_k

e: the mean of the LM's input embeddings of the expression's tokens; x_k: the patch's standardised features with
a 3 x 3 ``adapter``'s output added (each patch seen with its neighbours, as the pointer head's). Its ``candidates``
best peaks (each at least ``suppress`` cells from the others) each give a place (the softmax-weighted mean of the
cells within ``window`` of the peak) and a size (a small MLP of e and the mean features of those cells). The classical
segmenter draws each candidate's outline inside its box grown by ``box_scale`` (SAM's split of labour: a prompt
gives the place, a segmenter the outline), and the model picks among them as it picks among the object
pipeline's tracks (regionlm.model.grounding): the likelihood of the expression as that region's referring
expression, plus ``head_weight`` times the head's score. Tracking (``refer_track``,
``RegionLMSystem(rsot_mode="point")``): the pointer head follows every candidate, each is shown to the model on
every frame of its clip, outlined around where the pointer took it (regionlm.model.outline), and the pick weighs
frame 0 against the later frames (pick_score); the pick's track is the answer. ``locate`` (one image) picks on
frame 0 alone.

About 78k weights (37k of them the adapter), fitted on the frozen model's features of the first frames of
RegionWorld referring-tracking sequences (``fit_refer``; ``regionlm fit-pointer`` and ``regionlm train``'s
``pointer:`` section fit it beside the pointer head), shipped beside the model's weights as
``refer_head.safetensors``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from ..errors import RegionLMError
from .pointer import GridAdapter, box_centre, box_cover, cell_centres, grid_features, pooled, read_head, write_head

REFER_FILE = "refer_head.safetensors"
# The pick (refer_track): this share of a candidate's score is its likelihood on frame 0, where it was found, the
# rest its mean likelihood on the clip's later frames, where the pointer head took it. On the validation split
# (val seed 2, 238 sequences, boxes outlined) 0.5 raised world-rsot from 69.1 (frame 0 alone) to 70.9.
FIRST_FRAME_SHARE = 0.5


@dataclass
class ReferConfig:
    rank: int = 32            # of the words-patch match
    adapter: int = 32         # width of the 3 x 3 convolution over the grid (0: none)
    size_hidden: int = 64     # the size MLP's width
    candidates: int = 5       # peaks the model picks among (1: the head's best, no pick)
    suppress: int = 2         # a later peak is more than this many cells (each way) from the earlier ones
    window: int = 1           # a candidate's place: the mean of the cells within this many of its peak
    box_scale: float = 1.3    # the segmenter's box: the guessed size times this (the guess is rough; the outline
                              # is the segmenter's)
    head_weight: float = 0.5  # the pick: the words' log-likelihood for each candidate plus its peak's score times this

    def validate(self) -> None:
        if self.rank < 1 or self.size_hidden < 1 or self.candidates < 1:
            raise RegionLMError("refer head: rank, size_hidden and candidates must be at least 1")
        if self.adapter < 0 or self.suppress < 0 or self.window < 0:
            raise RegionLMError("refer head: adapter, suppress and window must be at least 0")
        if self.box_scale <= 0:
            raise RegionLMError(f"refer head: box_scale must be positive, got {self.box_scale}")
        if self.head_weight < 0:
            raise RegionLMError(f"refer head: head_weight must be at least 0, got {self.head_weight}")


class ReferHead(nn.Module):
    """The score of each patch for the words (the module docstring's formula) and the size of what is there;
    ``dim``: the vision features' width, ``text_dim``: the LM's embedding width."""

    def __init__(self, dim: int, text_dim: int, config: ReferConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.a = nn.Linear(text_dim, config.rank)
        self.b = nn.Linear(dim, config.rank)
        self.u = nn.Linear(dim, 1)
        self.size = nn.Sequential(nn.Linear(text_dim + dim, config.size_hidden), nn.GELU(),
                                  nn.Linear(config.size_hidden, 2))  # log width, log height (frame fractions)
        self.register_buffer("mean", torch.zeros(dim))  # the features' mean and std over the fit set
        self.register_buffer("std", torch.ones(dim))
        self.adapter = GridAdapter(dim, config.adapter) if config.adapter else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, P, D) raw features of square grids -> standardised, with the adapter's output added."""
        x = (x - self.mean) / self.std
        return x if self.adapter is None else self.adapter.residual(x)

    def forward(self, query: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """query (N, E), features (N, P, D) from ``features`` -> logits (N, P)."""
        w = self.a(query) @ self.b.weight / math.sqrt(self.config.rank) + self.u.weight  # (N, D), as PointerHead
        return torch.einsum("nd,npd->np", w, f)

    def log_size(self, query: torch.Tensor, pooled_f: torch.Tensor) -> torch.Tensor:
        """query (N, E), the features where the object is (N, D) -> (N, 2) log width and height (fractions)."""
        return self.size(torch.cat([query, pooled_f], -1))


def expression_query(model, tokenizer, expressions) -> torch.Tensor:
    """(N, E): the mean of the LM's input embeddings of each expression's tokens (what the words are, in the
    model's own vocabulary; word order says little in a referring expression)."""
    emb = model.get_input_embeddings()
    out = []
    with torch.no_grad():
        for text in expressions:
            ids = tokenizer(text)["input_ids"]
            if not ids:
                raise RegionLMError("the expression is empty; name the object, e.g. \"the small red star\"")
            out.append(emb(torch.tensor(ids, device=emb.weight.device)).float().mean(0).cpu())
    return torch.stack(out)


def peak_candidates(head: ReferHead, query: torch.Tensor, f: torch.Tensor) -> list:
    """For one query (E,) and one frame's features (P, D) from ``head.features``: up to ``candidates`` peaks as
    (place (2,), size (2,), score) in frame fractions, best first."""
    cfg = head.config
    with torch.no_grad():
        logits = head(query[None], f[None])[0]
        p = logits.softmax(-1)
        g = int(round(math.sqrt(len(p))))
        centres = cell_centres(g)
        free, out = logits.clone(), []
        for _ in range(cfg.candidates):
            peak = int(free.argmax())
            if not torch.isfinite(free[peak]):
                break
            near = around(torch.tensor([peak]), g, cfg.window)[0]
            w = p * near
            place = w @ centres / w.sum().clamp(min=1e-12)
            size = head.log_size(query[None], pooled(f[None], near[None].float()))[0].exp()
            out.append((place, size, float(logits[peak])))
            free[around(torch.tensor([peak]), g, cfg.suppress)[0]] = -math.inf
    return out


def around(cells: torch.Tensor, g: int, k: int) -> torch.Tensor:
    """(N,) cells of a g x g grid -> (N, g*g) bool: the cells within ``k`` of each (each way)."""
    grid = torch.arange(g * g, device=cells.device)
    return (((grid // g)[None] - (cells // g)[:, None]).abs() <= k) & \
        (((grid % g)[None] - (cells % g)[:, None]).abs() <= k)


def find_candidates(system, head: ReferHead, frame: np.ndarray, expression: str, segmenter) -> tuple:
    """The head's candidates for ``expression`` on ``frame`` ((H, W, 3) uint8), best first: (their [x1, y1, x2, y2]
    pixel boxes, their (H, W) bool masks (the segmenter's outline inside the guessed box, or that box), their peak
    scores (K,)); empty when the head finds none."""
    from ..regions import mask_to_box
    from .inference import _box_mask
    from .outline import outline_in, segmenter_view
    from .processing import pixel_values

    model = system.model
    h, w = frame.shape[:2]
    x = grid_features(model, torch.from_numpy(pixel_values([frame[None]], model.config)))[0, 0]
    query = expression_query(model, system.processor.tokenizer, [expression])[0]
    found = peak_candidates(head, query, head.features(x[None])[0])
    view = segmenter_view(frame)
    boxes, masks = [], []
    for place, size, _ in found:
        cx, cy = float(place[0]) * w, float(place[1]) * h
        half = size * head.config.box_scale / 2 * torch.tensor([w, h])
        box = [max(0.0, cx - float(half[0])), max(0.0, cy - float(half[1])), min(float(w), cx + float(half[0])),
               min(float(h), cy + float(half[1]))]
        mask = outline_in(segmenter, view, box)
        if mask is not None:
            box = [float(v) for v in mask_to_box(mask)]
        else:  # nothing outlined: the guessed box is the outline
            mask = _box_mask(box, h, w)
        boxes.append(box)
        masks.append(mask)
    return boxes, masks, np.asarray([s for _, _, s in found], float)


def view_likelihoods(system, clip: np.ndarray, expression: str, shown: np.ndarray) -> np.ndarray:
    """(K, T) log p(expression | candidate k shown on clip frame t alone), -inf where ``shown[k, t]`` (K, T, H, W
    bool) is empty: the model's reg task, as grounding shows each track one frame at a time."""
    from .grounding import candidate_example, expression_likelihoods, single_views

    out = np.full(shown.shape[:2], -np.inf)
    examples, where = [], []
    for k, track in enumerate(shown):
        example = candidate_example(clip, track, range(len(clip)))
        if example is None:
            continue
        examples += single_views(dataclasses.replace(example, answer=expression))
        where += [(k, t) for t in np.flatnonzero(example.regions[0].given)]
    for (k, t), value in zip(where, expression_likelihoods(system, examples, "joint")):
        out[k, t] = value
    return out


def pick_score(likelihoods: np.ndarray, head_scores: np.ndarray, head_weight: float) -> np.ndarray:
    """(K,) the pick's score of each candidate from view_likelihoods (K, T): FIRST_FRAME_SHARE of its likelihood
    on frame 0, the rest the log of its mean likelihood on the later frames it is shown on, plus ``head_weight``
    times the head's score."""
    first, later = likelihoods[:, 0], likelihoods[:, 1:]
    score = first.copy()
    for k, row in enumerate(later):
        row = row[np.isfinite(row)]
        if len(row):
            score[k] = FIRST_FRAME_SHARE * first[k] + (1 - FIRST_FRAME_SHARE) * (np.logaddexp.reduce(row) -
                                                                                  np.log(len(row)))
    return score + head_weight * head_scores


def locate(system, head: ReferHead, frames: np.ndarray, expression: str, segmenter=None) -> Optional[list]:
    """The [x1, y1, x2, y2] pixel box of the object ``expression`` names on ``frames[0]`` ((T, H, W, 3) uint8: the
    clip the model sees, at most its ``num_frames``, frame 0 first; the candidates shown on frame 0 only), or None
    when the head finds no candidate."""
    from ..objects.classical.segment import ClassicalSegmenter

    boxes, masks, head_scores = find_candidates(system, head, frames[0], expression,
                                                segmenter or ClassicalSegmenter())
    if len(boxes) <= 1:
        return boxes[0] if boxes else None
    shown = np.zeros((len(boxes),) + frames.shape[:3], bool)
    shown[:, 0] = masks
    scores = pick_score(view_likelihoods(system, frames, expression, shown)[:, :1], head_scores,
                        head.config.head_weight)
    return boxes[int(scores.argmax())]


def refer_track(system, head: ReferHead, pointer, frames, expression: str, outline=None,
                segmenter=None) -> Optional[list]:
    """[x, y, w, h] pixel boxes on every frame of ``frames`` ((T, H, W, 3) uint8 or an inference.FrameSource) of
    the object ``expression`` names, or None when the head finds no candidate. The candidates are found on frame
    0 (find_candidates) and each followed by the ``pointer`` head; the model picks among them shown on the clip
    it sees (``system.num_frames`` frames, frame 0 first), on each frame outlined around where the pointer took
    it (pick_score); the pick's boxes are outlined on every frame when ``outline`` (an OutlineConfig) is given."""
    from ..video import sample_indices
    from .inference import _box_mask
    from .outline import OutlineConfig, outline_segmenter, outline_track, outlined, segmenter_view
    from .pointer import follow_box, frame_reader, track_features

    n, h, w, get = frame_reader(frames)
    positions = sample_indices(n, num=system.num_frames, keep=[0])
    clip = frames[positions] if isinstance(frames, np.ndarray) else frames.get(positions)
    segmenter = segmenter or outline_segmenter(outline or OutlineConfig())
    boxes, masks, head_scores = find_candidates(system, head, clip[0], expression, segmenter)
    if not boxes:
        return None
    x = track_features(system.model, pointer, frames)
    tracks = [follow_box(pointer, x, [b[0], b[1], b[2] - b[0], b[3] - b[1]], w, h) for b in boxes]
    k = 0
    if len(boxes) > 1:
        shown = np.zeros((len(boxes), len(clip), h, w), bool)
        shown[:, 0] = masks
        views = [segmenter_view(f) for f in clip[1:]]
        for i, track in enumerate(tracks):  # shown outlined, whatever ``outline`` says of the boxes returned
            for j, (p, view) in enumerate(zip(positions[1:], views), 1):
                bx, by, bw, bh = track[p]
                _, mask = outlined(segmenter, view, [bx, by, bx + bw, by + bh], OutlineConfig())
                shown[i, j] = mask if mask is not None else _box_mask([bx, by, bx + bw, by + bh], h, w)
        scores = pick_score(view_likelihoods(system, clip, expression, shown), head_scores, head.config.head_weight)
        k = int(scores.argmax())
    return tracks[k] if outline is None else outline_track(get, n, tracks[k], outline, segmenter)


def fit_refer(x: torch.Tensor, boxes: torch.Tensor, queries: torch.Tensor, config: ReferConfig = ReferConfig(), *,
              steps: int, batch: int = 256, lr: float = 3e-3, seed: int = 0, log: Callable = print,
              device=None) -> ReferHead:
    """Fit a refer head: x (N, P, D) raw features of first frames, boxes (N, 4) the named objects' xyxy boxes
    (fractions), queries (N, E) their expressions' ``expression_query``. The loss: the cross-entropy against each
    cell's share of the box, the pointed centre's pixel error (L1, of 64) and the size's L1 in log units, the size
    read from the features under the box. (Read instead over the cells within ``window`` of the centre's cell, as
    ``peak_candidates`` reads it, the sizes missed less but the segmenter's boxes found the object less often: the
    right one among 3 candidates for 81.9% / 76.9% of the validation expressions at two seeds, against 85.7%.)"""
    if len(x) == 0:
        raise RegionLMError("refer head: no sequences to fit on (the named object must be seen on frame 0)")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    device = torch.device(device or "cpu")
    x, boxes, queries = x.to(device), boxes.to(device), queries.to(device)
    g = int(round(math.sqrt(x.shape[1])))
    head = ReferHead(x.shape[-1], queries.shape[-1], config).to(device)
    head.mean.copy_(x.mean((0, 1)))
    head.std.copy_(x.std((0, 1)).clamp(min=1e-6))
    centres = cell_centres(g).to(device)
    cover = box_cover(boxes, g)
    target = cover / cover.sum(-1, keepdim=True).clamp(min=1e-6)
    log_wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3).log()
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for step in range(steps):
        i = torch.randint(len(x), (min(batch, len(x)),), generator=gen).to(device)
        f = head.features(x[i])
        logp = head(queries[i], f).log_softmax(-1)
        ce = -(target[i] * logp).sum(-1).mean()
        centre_px = ((logp.exp() @ centres - box_centre(boxes[i])).abs().sum(-1) * 64).mean()
        size = (head.log_size(queries[i], pooled(f, cover[i])) - log_wh[i]).abs().sum(-1).mean()
        loss = ce + centre_px + size
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(1, steps // 5) == 0:
            log(f"  refer: step {step + 1}/{steps}, cross-entropy {ce.item():.3f}, centre error "
                f"{centre_px.item():.2f} px (L1, of 64), size error {size.item():.3f} (log)")
    return head.cpu().eval()


def save_refer(head: ReferHead, folder):
    """Write the head into a model folder (pointer.write_head: safetensors, the weights' fingerprint)."""
    return write_head(head, folder, REFER_FILE, {"text_dim": head.a.in_features})


def load_refer(folder) -> Optional[ReferHead]:
    """The refer head of a model folder, or None; one fitted on other weights is refused (pointer.StalePointer)."""
    return read_head(folder, REFER_FILE, lambda meta: ReferHead(int(meta["dim"]), int(meta["text_dim"]),
                                                                 ReferConfig(**meta["config"])))


__all__ = ["REFER_FILE", "ReferConfig", "ReferHead", "expression_query", "peak_candidates", "locate", "fit_refer",
           "save_refer", "load_refer"]
