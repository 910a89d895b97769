"""Do the context tokens say where a tracked object went? A probe on a frozen model's LM inputs.

The shipped model writes its first box again when it tracks (docs/RESULTS.md, "Why the model copies its first
box"). Either its context tokens do not carry where the object is on later frames, or they do and the LM has not
learned to read it out as numbers. This probe tells the two apart without the LM: from the tokens the LM is given
(connector output, with context_positions / context_frames as the config says), a query = the mean of frame 0's
tokens over the object's mask, and a small learned match (score of token k = (A q) . (B k) + u . k, rank 32), it
points at one frame's tokens; the softmax-weighted centre of the tokens is its guess of the object's centre on
that frame. It is trained (cross-entropy against the share of each token the object covers) on RegionWorld
videos of one seed and scored on another, neither seen in training (seed 5 -> seed 6).

Rows: the probe; the same probe scored with the queries of other samples (does it use the query?); the probe
without a query (u . k only: where is some object?); the probe with a place prior (- c d^2, d the distance from
the object's centre on frame 0, which a tracker, and the LM with its first box, knows); the prior alone (the
token nearest the start: copying, at the tokens' resolution). All for the model and for the same architecture
with fresh random weights (what the pixels alone give). Scores over the frames after frame 0 where the object is
seen: the mean centre error in pixels (copying frame 0's centre: "copy"), the share of frames whose most-pointed
token covers the object (and the error of that token's centre), and how the guessed moves from frame 0 follow
the true ones (correlation in x and y).

Then the trained model's probe with the prior tracks: on the world-sot sequences of the held-out videos (val,
seed 2, as tracking_scratch), each later frame's box is the first box moved to where the probe points (its prior
centred where it pointed on the frame before), scored by the benchmark's own success AUC against repeating the
first box. ``--guide DIR`` scores beside it the read-out a model trains with itself: the Temporal Region Guide
Head of a model with token marks (Omni-RGPT), marking the box on each clip's first frame (guide_track).

    python benchmarks/tracking_probe.py [--model regionlm/assets/default_model] [--train 480] [--test 240]
        [--steps 600] [--sot 222] [--guide DIR] [--out benchmarks/results/tracking_probe]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from motion_scratch import VAL, held_out_data  # noqa: E402
from regionlm.data.io import atomic_write_text  # noqa: E402

TRAIN_SEED, TEST_SEED = 5, 6  # world seeds no training run streams (training: 0 and 3, test split 1, val 2)
RANK = 32


@dataclass
class Tokens:
    """One set of clips as the probe sees them: per sample, frame and token."""
    x: torch.Tensor        # (S, T, P, D) context tokens
    cover: torch.Tensor    # (S, T, P) share of each token the object covers
    centres: torch.Tensor  # (S, T, P, 2) each token's centre as a fraction of the frame
    size: float = 64.0     # the frame's side in pixels, to report distances in
    frame_index: Optional[torch.Tensor] = None  # (N,) each token's frame before grouping (to group other values)


def context_tokens(model, batch, features: Optional[torch.Tensor] = None) -> Tokens:
    """The LM's context tokens of a processed batch grouped by frame, and the region's cover of each; from the
    batch's vision ``features`` when they are at hand."""
    from regionlm.model.connectors import cell_centres

    with torch.no_grad():
        if features is None:
            features = model.vision_features(batch["pixel_values"].to(model.dtype))
        tokens, out = model.context_tokens(features)
        b, t, h, w, _ = features.shape
        masks = batch["region_masks"][:, 0].float()  # (B, T, H, W): the one region of each sample
        cells = F.adaptive_avg_pool2d(masks.flatten(0, 1)[:, None], (h, w)).reshape(b, t, h, w, 1)
        cover = model.connector.reduce_maps(cells, out)[..., 0]
        centres = model.connector.reduce_maps(cell_centres(b, t, h, w, features.device, torch.float32), out)
    x, cover, centres = (by_frame(v, out.frame_index, model.config.connector) for v in (tokens, cover, centres))
    return Tokens(x.float(), cover, centres, float(masks.shape[-1]), out.frame_index)


def by_frame(values: torch.Tensor, frames: torch.Tensor, connector: str) -> torch.Tensor:
    """(B, N, ...) per token -> (B, T', P, ...) per frame step and token (the tokens in their frame's order)."""
    steps = frames.unique()
    per = int((frames == steps[0]).sum())
    if any(int((frames == s).sum()) != per for s in steps):
        raise SystemExit(f"--model: connector {connector!r} keeps a different number of tokens per frame")
    order = torch.argsort(frames, stable=True)
    return values[:, order].reshape(values.shape[0], len(steps), per, *values.shape[2:])


def collect(model, processor, seed: int, samples: int, batch: int = 16) -> Tokens:
    from regionlm.model.world_examples import ExampleOptions, WorldTaskStream
    from regionlm.world import WorldConfig

    cfg = model.config
    # every frame's mask given, so the truth is known on each; the probe reads only frame 0's as its query
    options = replace(ExampleOptions(), multi_frame_prob=1.0, first_frame_only=0.0, box_prompt_prob=0.0,
                      with_objects=False)
    stream = iter(WorldTaskStream(WorldConfig(size=64, frames=16), "train", seed, {"region_caption": 1},
                                  cfg.num_frames, examples_per_video=4, options=options))
    parts = []
    for start in range(0, samples, batch):
        examples = [next(stream) for _ in range(min(batch, samples - start))]
        parts.append(context_tokens(model, processor(examples, train=True)))
    return Tokens(*(torch.cat([getattr(p, f) for p in parts]) for f in ("x", "cover", "centres")), parts[0].size,
                  parts[0].frame_index)


class MatchProbe(torch.nn.Module):
    """score(token k | query q) = (A q) . (B k) / sqrt(r) + u . k - c d^2; a softmax over one frame's tokens.
    d is the distance of the token's centre from the object's on frame 0 (a fraction of the frame): the place
    prior a tracker has, which the LM also has (the first box is in its prompt)."""

    def __init__(self, dim: int, rank: int = RANK, use_query: bool = True, use_tokens: bool = True,
                 use_prior: bool = False):
        super().__init__()
        self.use_query, self.use_tokens, self.use_prior = use_query, use_tokens, use_prior
        self.a, self.b = torch.nn.Linear(dim, rank), torch.nn.Linear(dim, rank)
        self.u = torch.nn.Linear(dim, 1)
        self.c = torch.nn.Parameter(torch.tensor(1.0))
        self.scale = rank ** -0.5

    def inputs(self, data: Tokens) -> tuple:
        """(tokens standardised by the fit set's mean and std, each sample's query from them)."""
        x = (data.x - self.mean) / self.std
        return x, queries(replace(data, x=x))

    def forward(self, query: torch.Tensor, x: torch.Tensor, dist2: torch.Tensor) -> torch.Tensor:
        """query (S, D), x (S, T, P, D), dist2 (S, T, P) -> logits (S, T, P)."""
        logits = torch.zeros(x.shape[:3])
        if self.use_tokens:
            logits = logits + self.u(x)[..., 0]
        if self.use_query:
            logits = logits + torch.einsum("sr,stpr->stp", self.a(query), self.b(x)) * self.scale
        if self.use_prior:
            logits = logits - F.softplus(self.c) * 100 * dist2
        return logits


PROBES = {  # row -> MatchProbe options
    "probe": {},
    "no query": {"use_query": False},
    "probe + place prior": {"use_prior": True},
    "place prior alone": {"use_query": False, "use_tokens": False, "use_prior": True},
}


def start_distances(data: Tokens) -> torch.Tensor:
    """(S, T, P): squared distance of each token's centre from the object's centre on frame 0, in frames."""
    start = truth_centres(data)[:, 0]  # (S, 2)
    return (data.centres - start[:, None, None]).pow(2).sum(-1)


def cover_shares(cover: torch.Tensor) -> torch.Tensor:
    """Each token's share of the object on its frame (rows of zeros where it is not seen)."""
    return cover / cover.sum(-1, keepdim=True).clamp(min=1e-6)


def truth_centres(data: Tokens) -> torch.Tensor:
    """(S, T, 2): the object's centre per frame, at the tokens' resolution (its tokens' centres by share)."""
    return (cover_shares(data.cover)[..., None] * data.centres).sum(2)


def queries(data: Tokens) -> torch.Tensor:
    """(S, D): frame 0's tokens averaged over the object's cover (the region as the model is shown it)."""
    w = data.cover[:, 0]
    return (data.x[:, 0] * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp(min=1e-6)


def scored_frames(cover: torch.Tensor) -> torch.Tensor:
    """(S, T) bool: frames 1.. where the object is seen, of samples where it is seen on frame 0 (the query)."""
    seen = cover.sum(-1) > 0
    keep = seen & seen[:, :1]
    keep[:, 0] = False
    return keep


def fit(data: Tokens, options: dict, steps: int, seed: int = 0) -> MatchProbe:
    torch.manual_seed(seed)
    mean, std = data.x.mean((0, 1, 2)), data.x.std((0, 1, 2)).clamp(min=1e-6)
    probe = MatchProbe(data.x.shape[-1], **options)
    probe.register_buffer("mean", mean)
    probe.register_buffer("std", std)
    x, q = probe.inputs(data)
    dist2 = start_distances(data)
    target = cover_shares(data.cover)
    keep = scored_frames(data.cover)
    opt = torch.optim.Adam(probe.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(steps):
        logp = probe(q, x, dist2).log_softmax(-1)
        loss = -(target * logp).sum(-1)[keep].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return probe.eval()


def score(probe: MatchProbe, data: Tokens, shuffle_queries: bool = False) -> dict:
    """Centre error (px), hit rate and how the guessed moves follow the true ones, over frames 1.. where seen."""
    x, q = probe.inputs(data)
    if shuffle_queries:  # each sample pointed with another's query
        q = q.roll(1, 0)
    with torch.no_grad():
        p = probe(q, x, start_distances(data)).softmax(-1)
    guess = (p[..., None] * data.centres).sum(2)                               # (S, T, 2)
    truth = truth_centres(data)
    keep = scored_frames(data.cover)
    top = p.argmax(-1, keepdim=True)
    hit = data.cover.gather(2, top)[..., 0] > 0
    peak = data.centres.gather(2, top[..., None].expand(-1, -1, -1, 2))[:, :, 0]  # the most-pointed token's centre
    px = data.size
    err = (guess - truth).norm(dim=-1)[keep] * px
    peak_err = (peak - truth).norm(dim=-1)[keep] * px
    copy = (truth[:, :1] - truth).norm(dim=-1)[keep] * px
    moved, guessed = (truth - truth[:, :1])[keep], (guess - truth[:, :1])[keep]
    corr = [float(torch.corrcoef(torch.stack([moved[:, i], guessed[:, i]]))[0, 1]) for i in (0, 1)]
    return {"frames": int(keep.sum()), "centre_error_px": round(float(err.mean()), 2),
            "peak_error_px": round(float(peak_err.mean()), 2),
            "copy_error_px": round(float(copy.mean()), 2), "hit": round(100 * float(hit[keep].float().mean()), 1),
            "follows_x": round(corr[0], 2), "follows_y": round(corr[1], 2)}


def first_box_batch(processor, frames: np.ndarray, box: tuple) -> dict:
    """A processed batch of one clip with ``box`` (xywh) as its region, given on the clip's first frame only."""
    from regionlm.model.example import Example, Region
    from regionlm.regions import box_to_mask, box_xywh_to_xyxy

    t, h, w, _ = frames.shape
    masks = np.zeros((t, h, w), bool)
    masks[0] = box_to_mask(box_xywh_to_xyxy(box), h, w)
    given = np.zeros(t, bool)
    given[0] = True
    return processor([Example("track", frames, "<region>", regions=[Region(masks, given)])], train=False)


def point_track(model, processor, probe: MatchProbe, frames: np.ndarray, init_box: tuple) -> list:
    """Boxes (xywh, video pixels) on every frame of ``frames`` (T, H, W, 3) from the first frame's box: on each
    later frame the probe (with its place prior, centred where it pointed on the frame before) points at the
    object, and the first box moves there."""
    t, h, w, _ = frames.shape
    data = context_tokens(model, first_box_batch(processor, frames, init_box))
    if data.x.shape[1] != t:
        raise SystemExit(f"--model: connector {model.config.connector!r} merges frames; the SOT score needs one "
                         f"token step per frame")
    x, q = probe.inputs(data)
    x0, y0, bw, bh = init_box
    place = torch.tensor([(x0 + bw / 2) / w, (y0 + bh / 2) / h])
    boxes = [list(init_box)]
    with torch.no_grad():
        for f in range(1, t):
            dist2 = (data.centres[:, f:f + 1] - place).pow(2).sum(-1)
            p = probe(q, x[:, f:f + 1], dist2).softmax(-1)[0, 0]
            place = (p[:, None] * data.centres[0, f]).sum(0)
            boxes.append([float(place[0]) * w - bw / 2, float(place[1]) * h - bh / 2, bw, bh])
    return boxes


def guide_track(model, processor, frames: np.ndarray, init_box: tuple, peak: bool = False) -> list:
    """Boxes (xywh) from a model's own Temporal Region Guide Head (Omni-RGPT; a model with token marks and
    config.guide_head): the box is marked on a clip's first frame, the guide head says of each later frame's
    context tokens how likely each is the marked region (from the LM's last hidden states), and the box moves to
    the likelihood-weighted centre (``peak``: the most likely token's centre). Clips of the model's num_frames, each
    starting on the last frame of the one before with the box found there (a short last clip repeats its last
    frame)."""
    t, h, w, _ = frames.shape
    n = model.config.num_frames
    boxes, start = [list(init_box)], 0
    while start < t - 1:
        index = [min(start + k, t - 1) for k in range(n)]
        batch = first_box_batch(processor, frames[index], boxes[start])
        with torch.no_grad():
            embeds, _, video_pos, features, _ = model.embed_inputs(
                batch["input_ids"], batch["pixel_values"], batch["region_masks"], batch["region_given"],
                batch["region_valid"], return_features=True)
            last = model.language_model(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                                        output_hidden_states=True).hidden_states[-1]
            likely = model.region_encoder.guide_head(last[video_pos][None]).softmax(-1)[..., 0]  # slot 0 -> mark 0
        data = context_tokens(model, batch, features)
        weights = by_frame(likely[..., None], data.frame_index, model.config.connector)[0, ..., 0]  # (T, P)
        _, _, bw, bh = init_box
        for k in range(1, n):
            if start + k >= t:
                break
            if peak:  # the most likely token's centre
                cx, cy = data.centres[0, k, int(weights[k].argmax())].tolist()
            else:  # the likelihood-weighted centre
                share = weights[k] / weights[k].sum().clamp(min=1e-9)
                cx, cy = (share[:, None] * data.centres[0, k]).sum(0).tolist()
            boxes.append([cx * w - bw / 2, cy * h - bh / 2, bw, bh])
        start += n - 1
    return boxes


def sot_scores(trackers: dict, folder: Path, limit: int, log) -> dict:
    """world-sot (success AUC etc., the benchmark's own scoring) of each tracker (name -> fn(frames, init_box) ->
    xywh boxes) and of repeating the first box."""
    from regionlm.eval.benchmarks import BenchmarkOptions, get_benchmark
    from regionlm.video import VideoReader

    bench = get_benchmark("world-sot")(BenchmarkOptions(data=folder))
    items = bench.load()[:limit]
    trackers = {**trackers, "copy the first box": lambda frames, box: [list(box)] * len(frames)}
    predictions = {name: {} for name in trackers}
    for i, track in enumerate(items):
        sample = track.sample
        with VideoReader(sample.video) as reader:
            frames = reader.get_frames(sample.frame_indices)
        for name, fn in trackers.items():
            predictions[name][track.id] = fn(frames, sample.init_box)
        if (i + 1) % 50 == 0:
            log(f"  world-sot: {i + 1}/{len(items)} sequences")
    return {name: {k: round(float(v), 1) for k, v in bench.score(items, preds).metrics.items()}
            for name, preds in predictions.items()}


def probe_model(model, processor, train: int, test: int, steps: int, log) -> tuple[dict, dict]:
    """(score rows of every probe, the fitted probes by name) on ``model``'s tokens."""
    start = time.time()
    fit_data = collect(model, processor, TRAIN_SEED, train)
    test_data = collect(model, processor, TEST_SEED, test)
    log(f"  tokens: {tuple(fit_data.x.shape)} to fit, {tuple(test_data.x.shape)} to score "
        f"({time.time() - start:.0f} s)")
    rows, fitted = {}, {}
    for name, options in PROBES.items():
        probe = fitted[name] = fit(fit_data, options, steps)
        rows[name] = score(probe, test_data)
        if options.get("use_query", True):
            rows[f"{name}, queries of other samples"] = score(probe, test_data, shuffle_queries=True)
        if name == "probe":
            rows["probe, on its own fit clips"] = score(probe, fit_data)
    return rows, fitted


def run_name(folder) -> str:
    """A model folder's name for a table: a run's name for its final/ folder."""
    path = Path(folder)
    return path.parent.name if path.name == "final" else path.name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "regionlm" / "assets" / "default_model"))
    ap.add_argument("--train", type=int, default=480, help="clips to fit the probe on (seed 5)")
    ap.add_argument("--test", type=int, default=240, help="clips to score it on (seed 6)")
    ap.add_argument("--steps", type=int, default=600, help="full-batch Adam steps of the probe")
    ap.add_argument("--no-random", action="store_true", help="skip the fresh-weights control")
    ap.add_argument("--sot", type=int, default=222, metavar="N",
                    help="score the trained model's probe as a tracker on N world-sot sequences (val, seed 2; 0: no)")
    ap.add_argument("--guide", action="append", default=[], metavar="DIR",
                    help="also score the own guide head of this model (token marks + guide head) as a tracker")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "tracking_probe"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from transformers import AutoTokenizer

    from regionlm.model import RegionLMForConditionalGeneration
    from regionlm.model.processing import RegionLMProcessor

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    start = time.time()
    model = RegionLMForConditionalGeneration.from_pretrained(args.model).eval()
    processor = RegionLMProcessor(AutoTokenizer.from_pretrained(args.model), model.config)
    models = {"trained": model}
    if not args.no_random:
        torch.manual_seed(0)
        models["fresh weights"] = RegionLMForConditionalGeneration(model.config).eval()
    rows, sot, trackers = {}, {}, {}
    for folder in args.guide:  # models with token marks and a guide head: their own head tracks
        guided = RegionLMForConditionalGeneration.from_pretrained(folder).eval()
        if getattr(guided.region_encoder, "guide_head", None) is None:
            log(f"--guide: {folder} has no guide head (config.guide_head with token marks)")
            return 2
        guided_processor = RegionLMProcessor.from_pretrained(folder)
        for peak in (False, True):
            trackers[f"guide head of {run_name(folder)}" + (", its peak" if peak else "")] = (
                lambda frames, box, m=guided, p=guided_processor, peak=peak: guide_track(m, p, frames, box, peak))
    for name, m in models.items():
        log(f"[{name}] ...")
        found, fitted = probe_model(m, processor, args.train, args.test, args.steps, log)
        rows.update({f"{name}: {row}": result for row, result in found.items()})
        if args.sot and name == "trained":
            probe = fitted["probe + place prior"]
            trackers[f"probe + place prior on {run_name(args.model)}"] = (
                lambda frames, box, m=m, probe=probe: point_track(m, processor, probe, frames, box))
    if args.sot:
        sot = sot_scores(trackers, held_out_data(Path(args.out)), args.sot, log)
    keys = ["frames", "centre_error_px", "peak_error_px", "copy_error_px", "hit", "follows_x", "follows_y"]
    print("| tokens: probe | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(str(r[k]) for k in keys) + " |")
    if sot:
        keys = list(next(iter(sot.values())))
        print(f"\nworld-sot ({VAL['split']} seed {VAL['seed']}), the probe as a tracker:")
        print("| boxes | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
        for name, r in sot.items():
            print(f"| {name} | " + " | ".join(str(r[k]) for k in keys) + " |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "tracking_probe", "model": args.model, "train_seed": TRAIN_SEED, "test_seed": TEST_SEED,
              "train_clips": args.train, "test_clips": args.test, "steps": args.steps, "rank": RANK, "rows": rows,
              "world_sot": sot,
              "seconds": round(time.time() - start, 1)}
    atomic_write_text(out / "tracking_probe.json", json.dumps(result, indent=2) + "\n")
    log(f"wrote {out / 'tracking_probe.json'} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
