"""world-d: RegionWorld region descriptions (region_caption.json, the VideoRefer-Bench-D format).

Metrics: caption metrics against the reference description (``bleu4``, ``meteor``, ``rouge_l``, ``cider``, x100)
and the deterministic RegionWorld judge (metrics.world_judge: ``judge_overall`` and one key per dimension, 0-5),
which compares the description's attributes and events with the object's ground truth; ``attributes`` (and
``attr_colour`` / ``attr_shape`` / ``attr_size`` / ``attr_motion``): percent of those four named right.
"""

from __future__ import annotations

from ...errors import DataFormatError
from ...world.language import DIRECTIONS, REGIONS
from ...world.spec import COLOURS, SHAPES, SIZES
from ..metrics.judge import DIMENSIONS
from ..metrics.world_judge import ATTRIBUTES, WorldJudge, attribute_checks
from .base import Sample, Scores, resolve_path
from .captions import CaptionBenchmark
from .choice import int_frame
from .registry import register_benchmark
from .world import read_ground_truth, read_world_records, require_keys

DESCRIBE_PROMPT = "Please give a detailed description of the highlighted object [<region>] in the video."


@register_benchmark("world-d")
class WorldD(CaptionBenchmark):
    summary = "RegionWorld region descriptions: caption metrics + deterministic ground-truth judge"
    data_help = "a RegionWorld folder (regionlm world generate OUT --split test)"
    headline = ("judge_overall", *DIMENSIONS, "attributes", "bleu4", "meteor", "rouge_l", "cider")

    def load(self) -> list:
        recs = read_world_records(self.data, "region_caption.json")
        keys = ("id", "video", "caption", "annotation", "frame_idx", "object_ids")
        recs = [require_keys(r, keys, "region_caption.json", i) for i, r in enumerate(recs)]
        videos = read_ground_truth(self.data)
        for rec in recs:
            video = videos.get(rec["video"])
            obj = next((o for o in (video or {}).get("objects", ()) if o.get("id") == rec["object_ids"][0]), None)
            if obj is None:
                raise DataFormatError(self.data / "ground_truth.json", rec["id"], "objects",
                                      f"no object {rec['object_ids'][0]} of {rec['video']}")
            rec["_truth"] = {"object": obj, "events": video.get("events", [])}
        return recs

    def samples(self, items: list) -> list[Sample]:
        return [Sample(id=str(r["id"]), task=self.task, video=resolve_path(r["video"], self.data,
                                                                          self.options.video_root),
                       prompt=DESCRIBE_PROMPT, regions=tuple(r["annotation"]), frame_idx=int_frame(r["frame_idx"]),
                       height=r.get("height"), width=r.get("width")) for r in items]

    def score(self, items: list, predictions: dict) -> Scores:
        refs = {str(r["id"]): [r["caption"]] for r in items}
        scores = self.caption_scores(refs, {sid: predictions[sid] for sid in refs})
        judged = [(str(r["id"]), r["caption"], predictions[str(r["id"])], r["_truth"]) for r in items]
        self.add_judge(scores, judged, WorldJudge(), WorldJudge.name)
        # attributes: percent of (colour, shape, size, motion) named right, over all descriptions
        checks = [attribute_checks(ref, pred, truth["object"]) for _, ref, pred, truth in judged]
        for name in ATTRIBUTES:
            scores.metrics[f"attr_{name}"] = 100.0 * sum(c[name] for c in checks) / len(checks) if checks else None
        total = sum(sum(c.values()) for c in checks)
        scores.metrics["attributes"] = 100.0 * total / (len(ATTRIBUTES) * len(checks)) if checks else None
        return scores

    def random_answer(self, sample: Sample, rng) -> str:
        """A description in the RegionWorld template with random attributes and heading."""
        def pick(seq):
            seq = list(seq)
            return seq[int(rng.integers(len(seq)))]

        place = pick(pick(REGIONS))
        return (f"A {pick(SIZES)} {pick(COLOURS)} {pick(SHAPES)}. It starts {place} and moves {pick(DIRECTIONS)}.")
