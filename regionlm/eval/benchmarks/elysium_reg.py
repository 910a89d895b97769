"""elysium-reg: Video-REG on ElysiumTrack-style records (a JSON/JSONL file of tracked objects).

The system sees the object's box on every frame (``region_kind == "box"``, pixel xyxy) and names it; the reference
is the record's ``object_description``. Metrics: caption metrics (``bleu4``, ``meteor``, ``rouge_l``, ``cider``,
x100). Frame paths resolve next to the file or under --video-root. The prompt is our wording (Elysium's own REG
prompt is not published with its evaluation code).
"""

from __future__ import annotations

from ...data.elysium import load_elysium
from ...errors import DataFormatError
from .base import Sample, Scores, resolve_path
from .captions import CaptionBenchmark
from .registry import register_benchmark
from .world_reg import REG_PROMPT


@register_benchmark("elysium-reg")
class ElysiumREG(CaptionBenchmark):
    summary = "Video referring expression generation on ElysiumTrack records: caption metrics"
    data_help = "an ElysiumTrack JSON/JSONL file"
    classes: list = []

    def load(self) -> list:
        tracks = load_elysium(self.data).records
        for t in tracks:
            if not t.object_description:
                raise DataFormatError(self.data, t.id, "object_description", "missing: it is the reference expression")
        ids = [str(t.id) for t in tracks]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise DataFormatError(self.data, dup[0], "id", f"ids must be unique; repeated: {', '.join(dup)}")
        self.classes = sorted({t.object_class for t in tracks if t.object_class})
        return tracks

    def samples(self, items: list) -> list[Sample]:
        base, root = self.data.parent, self.options.video_root
        out = []
        for t in items:
            boxes = {i: [float(v) for v in b] for i, b in enumerate(t.boxes)}
            out.append(Sample(id=str(t.id), task=self.task, prompt=REG_PROMPT, regions=(boxes,), region_kind="box",
                              frames=tuple(resolve_path(f, base, root) for f in t.frames), frame_idx=0,
                              width=t.frame_size[0], height=t.frame_size[1]))
        return out

    def score(self, items: list, predictions: dict) -> Scores:
        refs = {str(t.id): [t.object_description] for t in items}
        return self.caption_scores(refs, {sid: predictions[sid] for sid in refs})

    def random_answer(self, sample: Sample, rng) -> str:
        """A class name of the dataset (a prior over the data, not this sample's answer)."""
        classes = self.classes or ["object"]
        return f"the {classes[int(rng.integers(len(classes)))]}"
