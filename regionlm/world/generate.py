"""Generating RegionWorld splits: videos (mp4) plus one annotation file per task, byte-identical for the same
arguments."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from ..data.io import atomic_write_json, atomic_write_jsonl
from ..errors import RegionLMError
from .annotate import Annotator, VideoAnnotations
from .facts import Facts
from .render import Rendering, render
from .simulate import Scene, annotation_rng, sample_scene
from .spec import SPLITS, WorldConfig

TASK_FILES = ("region_qa.json", "region_caption.json", "sot.jsonl", "rsot.jsonl", "reg.jsonl", "video_qa.json",
              "ground_truth.json")
# Video files are encoded near-losslessly: colours must survive h264 on tiny objects.
VIDEO_OPTIONS = {"crf": "8", "preset": "veryfast"}


def video_name(split: str, seed: int, index: int) -> str:
    return f"{split}-s{seed}-{index:05d}"


def make_video(seed: int, split: str, index: int, cfg: WorldConfig, video_path: str | None = None
               ) -> tuple[Scene, Rendering, VideoAnnotations]:
    """One video of a split: its scene, pixels and annotations. Pure function of its arguments."""
    if split not in SPLITS:
        raise RegionLMError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    scene = sample_scene(seed, split, index, cfg)
    r = render(scene, cfg.noise_std)
    vid = video_name(split, seed, index)
    rng = annotation_rng(seed, split, index)
    notes = Annotator(Facts(scene, r), video_path or f"videos/{vid}.mp4", vid, rng, cfg).all()
    return scene, r, notes


def necessity_stats(region_qa: list[dict]) -> dict:
    """How often the region matters: questions whose look-alike object has another correct answer."""
    n = len(region_qa)
    k = sum("lookalike" in q for q in region_qa)
    return {"region_questions": n, "lookalike_differs": k, "region_necessity_rate": round(k / n, 4) if n else 0.0}


def generate_split(out_dir, split: str, num_videos: int, seed: int, cfg: WorldConfig | None = None,
                   write_videos: bool = True, progress: bool = True) -> dict:
    """Write `num_videos` videos and the task files to `out_dir`; returns a summary (counts, rates)."""
    from ..video import write_video  # PyAV only when videos are written

    cfg = cfg or WorldConfig()
    cfg.validate()
    if num_videos < 1:
        raise RegionLMError(f"--num-videos must be at least 1, got {num_videos}")
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    tasks: dict[str, list] = {name: [] for name in TASK_FILES}
    indices = range(num_videos)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"RegionWorld {split}", unit="video")
    for i in indices:
        _, r, notes = make_video(seed, split, i, cfg)
        if write_videos:
            write_video(out / notes.ground_truth["video"], r.frames, fps=cfg.fps, options=VIDEO_OPTIONS)
        tasks["region_qa.json"] += notes.region_qa
        tasks["region_caption.json"] += notes.region_caption
        tasks["sot.jsonl"] += notes.sot
        tasks["rsot.jsonl"] += notes.rsot
        tasks["reg.jsonl"] += notes.reg
        tasks["video_qa.json"] += notes.video_qa
        tasks["ground_truth.json"].append(notes.ground_truth)
    config = {"split": split, "seed": seed, "num_videos": num_videos, **_jsonable(asdict(cfg))}
    for name, records in tasks.items():
        if name == "ground_truth.json":
            atomic_write_json(out / name, {"config": config, "videos": records})
        elif name.endswith(".jsonl"):
            atomic_write_jsonl(out / name, records)
        else:
            atomic_write_json(out / name, records)
    summary = {"split": split, "seed": seed, "num_videos": num_videos, "files": list(TASK_FILES),
               "counts": {k: len(v) for k, v in tasks.items()}, **necessity_stats(tasks["region_qa.json"])}
    # No paths or times in the file: the same arguments give the same bytes wherever they are written.
    atomic_write_json(out / "world.json", {"config": config, "summary": summary})
    return {"out_dir": os.fspath(out), **summary}


def _jsonable(d: dict) -> dict:
    return {k: sorted(map(list, v)) if isinstance(v, frozenset) else list(v) if isinstance(v, tuple) else v
            for k, v in d.items()}


__all__ = ["generate_split", "make_video", "necessity_stats", "TASK_FILES", "video_name"]
