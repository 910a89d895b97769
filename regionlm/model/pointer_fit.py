"""Fitting the pointer head (regionlm.model.pointer) on a model's frozen vision features of tracking sequences.

``sequence_features`` runs the tower once over a tracking benchmark's sequences (world-sot, lasot, vot);
``fit_pointer`` fits the head on them, by default tracking them from its own guesses as it will be used;
``fit_world_pointer`` does both on RegionWorld videos generated for it, and fits the refer head
(regionlm.model.refer) on the first frames of their referring-tracking sequences (``refer_data``): what
``regionlm train`` runs after training when its config has a ``pointer:`` section; ``regionlm fit-pointer`` is the
same for any tracking data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..errors import RegionLMError
from .pointer import (PointerConfig, PointerHead, box_centre, box_cover, cell_centres, follow, grid_features,
                      point_step, pooled, save_pointer, touches_edge, xyxy_fractions)


@dataclass
class Sequences:
    """Tracking sequences as the head is fitted on them: features and truth boxes per frame."""
    x: torch.Tensor        # (S, T, P, D) raw vision features
    boxes: torch.Tensor    # (S, T, 4) xyxy truth boxes as fractions of the frame
    present: torch.Tensor  # (S, T) bool: the object is seen


def sequence_features(model, tracks: Sequence, stitch: bool = False, max_frames: Optional[int] = None,
                      log: Callable = print, batch: int = 16) -> Sequences:
    """Features of tracking sequences (a tracking benchmark's ``Track``s: world-sot, lasot, vot) and their truth,
    each cut to its first ``max_frames`` frames."""
    from .inference import FrameSource
    from .processing import pixel_values

    xs, boxes, present = [], [], []
    for i in range(0, len(tracks), batch):
        clips = []
        for track in tracks[i:i + batch]:
            s = track.sample
            with FrameSource(s.frames if s.frames else s.video, s.frame_indices or None) as src:
                frames = src.get(list(range(min(src.num_frames, max_frames or src.num_frames))))
            clips.append(frames)
            h, w = frames.shape[1:3]
            gt = xyxy_fractions(np.asarray(track.gt, np.float32)[:len(frames)], w, h)
            absent = torch.as_tensor(np.asarray(track.absent, bool))[:len(frames)]
            boxes.append(gt)
            present.append(~absent & torch.isfinite(gt).all(-1))
        by_length: dict = {}
        for k, c in enumerate(clips):
            by_length.setdefault(len(c), []).append(k)
        feats = [None] * len(clips)
        for length, ks in by_length.items():
            f = grid_features(model, torch.from_numpy(pixel_values([clips[k] for k in ks], model.config)), stitch)
            for j, k in enumerate(ks):
                feats[k] = f[j]
        xs += feats
        log(f"  pointer: features of {min(i + batch, len(tracks))}/{len(tracks)} sequences")
    t = max(len(v) for v in xs)  # shorter sequences padded with frames where the object is not seen

    def padded(v, fill=0):
        return torch.cat([v, v.new_full((t - len(v), *v.shape[1:]), fill)])

    return Sequences(torch.stack([padded(v) for v in xs]), torch.nan_to_num(torch.stack([padded(b) for b in boxes])),
                     torch.stack([padded(p, False) for p in present]))


def training_pairs(data: Sequences) -> torch.Tensor:
    """(N, 2) (sequence, frame) pairs the head learns from: frames 1.. where the object and the frame before
    it are seen, of sequences that see it on frame 0."""
    ok = data.present.clone()
    ok[:, 1:] &= data.present[:, :-1]
    ok &= data.present[:, :1]
    ok[:, 0] = False
    return ok.nonzero()


def seen_whole_aspect(data: Sequences) -> float:
    """The median width / height of the boxes no frame edge cuts (0 when there are none)."""
    b = data.boxes[data.present]
    cut_x, cut_y = touches_edge(b)
    b = b[~cut_x & ~cut_y & (b[:, 3] > b[:, 1])]
    return float(((b[:, 2] - b[:, 0]) / (b[:, 3] - b[:, 1])).median()) if len(b) else 0.0


def fit_pointer(data: Sequences, config: PointerConfig = PointerConfig(), *, steps: int, batch: int = 512,
                lr: float = 3e-3, seed: int = 0, log: Callable = print, device=None) -> PointerHead:
    """Fit a pointer head on ``data`` for ``steps`` steps (the shipped recipe's: train.config.PointerSpec).
    ``config.training`` "teacher": each step a batch of ``batch`` frames,
    the prior and the template from the truth on the frames before (jittered by ``config.noise``); "rollout": a
    batch of ``batch // 8`` sequences tracked frame by frame as ``point_track`` does (``follow``), from its own
    guesses, the loss summed over the frames, so the head learns from the places its own mistakes lead it to.
    ``device``: where to fit it (default the CPU; a GPU holds the features and fits it in seconds); the head comes
    back on the CPU, where it runs beside the model."""
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same draws wherever the head is fitted
    torch.manual_seed(seed)
    device = torch.device(device or "cpu")
    data = Sequences(data.x.to(device), data.boxes.to(device), data.present.to(device))
    s, t, p, d = data.x.shape
    g = int(round(math.sqrt(p)))
    head = PointerHead(d, config).to(device)
    head.mean.copy_(data.x.mean((0, 1, 2)))
    head.std.copy_(data.x.std((0, 1, 2)).clamp(min=1e-6))
    head.aspect.fill_(seen_whole_aspect(data))
    pairs = training_pairs(data)
    if len(pairs) == 0:
        raise RegionLMError("pointer: no training frames (the object must be seen on frame 0 and on two frames in "
                            "a row)")
    starts = data.present[:, 0].nonzero()[:, 0]  # rollout: sequences that see the object on frame 0
    centres = cell_centres(g).to(device)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)

    def frame_loss(logits, truth):  # cross-entropy against the truth's cover + the centre's pixel error (L1)
        target = box_cover(truth, g)
        logp = logits.log_softmax(-1)
        ce = -(target / target.sum(-1, keepdim=True).clamp(min=1e-6) * logp).sum(-1)
        return ce, ((logp.exp() @ centres - box_centre(truth)).abs().sum(-1) * 64)

    for step in range(steps):
        if config.training == "teacher":
            pick = pairs[torch.randint(len(pairs), (min(batch, len(pairs)),), generator=gen).to(device)]
            si, fi = pick[:, 0], pick[:, 1]
            seen2 = data.present[si, (fi - 2).clamp(min=0)] & (fi >= 2)
            place = box_centre(data.boxes[si, fi - 1])
            velocity = torch.where(seen2[:, None], place - box_centre(data.boxes[si, (fi - 2).clamp(min=0)]), 0.0)
            x = head.adapt(head.standardise(torch.stack([data.x[si, 0], data.x[si, fi - 1], data.x[si, fi]], 1)))
            q0 = pooled(x[:, 0], box_cover(data.boxes[si, 0], g))
            logits = point_step(head, centres, q0, x[:, 1], x[:, 2], data.boxes[si, fi - 1], place, velocity,
                                config.noise, gen)
            ce, centre_px = frame_loss(logits, data.boxes[si, fi])
            ce, centre_px = ce.mean(), centre_px.mean()
        else:
            si = starts[torch.randint(len(starts), (max(1, min(batch // 8, len(starts))),), generator=gen).to(device)]
            logits, _ = follow(head, head.standardise(data.x[si]), data.boxes[si, 0], config.noise, gen)
            ce, err = frame_loss(logits, data.boxes[si, 1:])
            seen = data.present[si, 1:].float()
            n = seen.sum().clamp(min=1)
            ce, centre_px = (ce * seen).sum() / n, (err * seen).sum() / n
        loss = ce + config.centre_weight * centre_px
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 5.0)
        opt.step()
        sched.step()
        if (step + 1) % max(1, steps // 5) == 0:
            log(f"  pointer: step {step + 1}/{steps}, cross-entropy {ce.item():.3f}, centre error "
                f"{centre_px.item():.2f} px (L1, of 64)")
    return head.cpu().eval()


def refer_data(model, tokenizer, tracks: Sequence, log: Callable = print) -> tuple:
    """(x (N, P, D) first-frame features, boxes (N, 4) xyxy fractions, queries (N, E)) of referring-tracking
    sequences (world-rsot ``Track``s) whose object is seen on their first frame: what ``fit_refer`` fits on."""
    from .refer import expression_query

    data = sequence_features(model, tracks, max_frames=1, log=log)
    seen = data.present[:, 0]
    queries = expression_query(model, tokenizer, [t.sample.expression for t, ok in zip(tracks, seen.tolist()) if ok])
    return data.x[seen, 0], data.boxes[seen, 0], queries


def fit_world_refer(model, tokenizer, data, steps: int, limit: Optional[int] = None, video_root=None, device=None,
                    log: Callable = print) -> tuple:
    """The refer head fitted for ``steps`` steps on the first frames of a RegionWorld folder's world-rsot
    sequences (its first ``limit``) -> (the head, the number of sequences it was fitted on)."""
    from ..eval.benchmarks import BenchmarkOptions, get_benchmark
    from .refer import ReferConfig, fit_refer

    named = get_benchmark("world-rsot")(BenchmarkOptions(data=data, video_root=video_root)).load()[:limit]
    x, boxes, queries = refer_data(model, tokenizer, named, log=log)
    return fit_refer(x, boxes, queries, ReferConfig(), steps=steps, log=log, device=device), len(x)


def fit_world_pointer(model, folder, videos: int, split: str, seed: int, steps: int, world: Optional[dict] = None,
                      device=None, log: Callable = print, refer_steps: int = 0) -> dict:
    """Fit ``model``'s pointer head on the world-sot sequences of ``videos`` RegionWorld videos generated for it
    (``split`` / ``seed``: pick ones its training never streamed; the recipe: train.config.PointerSpec; ``world``:
    WorldConfig options, as trained) and, with ``refer_steps``, its refer head on their world-rsot sequences;
    write them into ``folder``, where ``model``'s weights are saved -> {"pointer": path, "refer": path or None}.
    The videos are generated beside the folder and removed after."""
    import shutil
    import tempfile

    from ..eval.benchmarks import BenchmarkOptions, get_benchmark
    from ..world import WorldConfig
    from ..world.generate import generate_split

    folder = Path(folder)
    tmp = Path(tempfile.mkdtemp(prefix=".pointer-videos-", dir=folder.parent))
    try:
        log(f"  pointer: {videos} RegionWorld videos ({split}, seed {seed}) to fit the head on")
        generate_split(tmp, split, videos, seed, WorldConfig(**(world or {})), progress=False)
        tracks = get_benchmark("world-sot")(BenchmarkOptions(data=tmp)).load()
        data = sequence_features(model, tracks, log=log)
        out = {"pointer": save_pointer(fit_pointer(data, PointerConfig(), steps=steps, log=log, device=device),
                                       folder), "refer": None}
        if refer_steps:
            from .processing import RegionLMProcessor
            from .refer import save_refer

            tokenizer = RegionLMProcessor.from_pretrained(folder, config=model.config).tokenizer
            head, _ = fit_world_refer(model, tokenizer, tmp, refer_steps, device=device, log=log)
            out["refer"] = save_refer(head, folder)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
