"""All annotations of one video, computed from its ground truth (never from a model)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..eval.metrics.multiple_choice import build_mc_prompt
from ..regions import mask_to_rle
from . import language as L
from .facts import CLEAR_VIEW, WELL_VISIBLE, Facts, ObjectFacts
from .questions import TEMPLATES, Candidate
from .spec import COLOURS, QUESTION_TYPES, SHAPES, WorldConfig

LETTERS = "ABCD"


@dataclass
class VideoAnnotations:
    region_qa: list[dict] = field(default_factory=list)
    region_caption: list[dict] = field(default_factory=list)
    sot: list[dict] = field(default_factory=list)
    rsot: list[dict] = field(default_factory=list)
    reg: list[dict] = field(default_factory=list)
    video_qa: list[dict] = field(default_factory=list)
    ground_truth: dict = field(default_factory=dict)


class Annotator:
    def __init__(self, F: Facts, video_path: str, vid: str, rng, cfg: WorldConfig):
        self.F, self.video, self.vid, self.rng, self.cfg = F, video_path, vid, rng, cfg
        self._rles: dict[tuple[int, int], dict] = {}

    # --- shared pieces ------------------------------------------------------------------------------------
    def rle(self, obj_id: int, t: int) -> dict:
        key = (obj_id, t)
        if key not in self._rles:
            self._rles[key] = mask_to_rle(self.F.visible_mask(obj_id, t))
        return self._rles[key]

    def region(self, obj_id: int) -> dict:
        """Bench-Q style annotation of one region: frame index -> visible mask, on every frame it is seen."""
        return {str(t): {"segmentation": self.rle(obj_id, t)} for t in self.F.objects[obj_id].visible_frames}

    def _base(self, rid: str, task: str) -> dict:
        return {"id": rid, "video": self.video, "height": self.F.size, "width": self.F.size, "task": task}

    def options(self, answer: str, pool: list[str], must: list[str] = ()) -> "tuple[list[str], str] | None":
        """4 options with `answer` at a random letter; `must` distractors first, then random ones from `pool`."""
        seen = {answer}
        chosen = []
        for p in list(must) + [pool[i] for i in self.rng.permutation(len(pool))]:
            if p not in seen:
                seen.add(p)
                chosen.append(p)
        if len(chosen) < 3:
            return None
        opts = [answer] + chosen[:3]
        opts = [opts[i] for i in self.rng.permutation(4)]
        texts = [f"({LETTERS[i]}) {L.capitalise(o)}" for i, o in enumerate(opts)]
        return texts, texts[opts.index(answer)]

    # --- region multiple choice -----------------------------------------------------------------------------
    def _mc_record(self, cand: Candidate, n: int) -> "dict | None":
        F = self.F
        f = F.objects[cand.regions[0]]
        look = F.lookalike(f)
        look_answer = cand.answer_for(look) if (cand.answer_for and look) else None
        frame = self._common_frame(cand.regions)
        if frame is None:
            return None
        look_frame = self._common_frame([look.id] + cand.regions[1:]) if look else None
        differs = look_answer is not None and look_answer != cand.answer and look_frame is not None
        built = self.options(cand.answer, cand.pool, [look_answer] if differs else [])
        if built is None:
            return None
        opts, answer = built
        rec = self._base(f"{self.vid}-q{n}", "region_qa")
        rec.update({
            "Question": cand.question, "type": cand.qtype, "options": opts, "Answer": answer,
            "frame_idx": str(frame), "annotation": None,  # filled in for the records picked (_fill_regions)
            "object_ids": cand.regions, "template": cand.template,
        })
        if differs:
            la = next(o for o in opts if o[4:] == L.capitalise(look_answer))
            rec["lookalike"] = {"object_id": look.id, "frame_idx": str(look_frame), "Answer": la, "annotation": None}
        rec["conversations"] = [
            {"from": "human", "value": "<video>\n" + build_mc_prompt(cand.question, opts)},
            {"from": "gpt", "value": answer},
        ]
        return rec

    def _common_frame(self, obj_ids: list[int]) -> "int | None":
        """The first frame where every region is seen: single-frame mode (Bench-Q frame_idx) needs all masks."""
        frames = set.intersection(*(set(self.F.objects[i].visible_frames) for i in obj_ids))
        return min(frames) if frames else None

    def region_questions(self) -> list[dict]:
        by_type: dict[str, list[dict]] = {t: [] for t in QUESTION_TYPES}
        for f in self.F.present:
            for template in TEMPLATES:
                cand = template(self.F, f, self.rng)
                if cand is None:
                    continue
                rec = self._mc_record(cand, 0)
                if rec is not None:
                    by_type[cand.qtype].append(rec)
        out = []
        for qtype in QUESTION_TYPES:
            recs = by_type[qtype]
            order = [recs[i] for i in self.rng.permutation(len(recs))]
            # Questions whose look-alike answers differently come first: they test that the region is used.
            order.sort(key=lambda r: "lookalike" not in r)
            picked, used = [], set()
            for r in order:
                key = (r["template"], r["object_ids"][0])
                if key in used or any(p["template"] == r["template"] for p in picked):
                    continue
                picked.append(r)
                used.add(key)
                if len(picked) == self.cfg.questions_per_type:
                    break
            out += picked
        for n, r in enumerate(out):
            r["id"] = f"{self.vid}-q{n}"
            self._fill_regions(r)
        return out

    def _fill_regions(self, rec: dict) -> None:
        """A picked record's region annotations (and its look-alike's): built only for the few records of the
        many candidates that are kept, as they cost more than the rest of a candidate."""
        ids = rec["object_ids"]
        rec["annotation"] = [self.region(i) for i in ids]
        if "lookalike" in rec:
            rec["lookalike"]["annotation"] = [self.region(j) for j in [rec["lookalike"]["object_id"]] + ids[1:]]

    # --- descriptions ---------------------------------------------------------------------------------------
    def describe(self, f: ObjectFacts) -> str:
        F = self.F
        spin = "" if not f.spin else " that spins clockwise" if f.spin > 0 else " that spins anticlockwise"
        parts = [f"A {f.size} {f.colour} {f.shape}{spin}."]
        events = list(f.events)
        start = F.centre(f.id, f.first)
        heading = L.direction(F.velocity(f.id, f.first))
        if events and events[0].kind == "enter" and events[0].obj == f.id and events[0].frame <= f.first:
            parts.append(f"It enters the frame from the {events.pop(0).wall} and moves {heading}.")
        elif f.static:
            parts.append(f"It stays still {L.region_of(start, F.size)}.")
        else:
            parts.append(f"It starts {L.region_of(start, F.size)} and moves {heading}.")
        if events:
            parts.append("Then it " + ", then it ".join(F.phrase(f, e) for e in events) + ".")
        last = F.T - 1
        if not f.static and f.boxes[last] is not None and last in f.visible_frames:
            parts.append(f"It ends {L.region_of(F.centre(f.id, last), F.size)}.")
        return " ".join(parts)

    def captions(self) -> list[dict]:
        out = []
        for f in self.F.present:
            rec = self._base(f"{self.vid}-d{f.id}", "region_caption")
            caption = self.describe(f)
            rec.update({"caption": caption, "frame_idx": str(f.first), "annotation": [self.region(f.id)],
                        "object_ids": [f.id],
                        "conversations": [{"from": "human", "value": "<video>\nDescribe <region> in detail."},
                                          {"from": "gpt", "value": caption}]})
            out.append(rec)
        return out

    # --- tracking and referring -----------------------------------------------------------------------------
    def tracks(self) -> tuple[list[dict], list[dict], list[dict]]:
        F = self.F
        sot, rsot, reg = [], [], []
        for f in F.present:
            # init_frame: the first frame where at least half of the whole object is seen (not a sliver at the
            # frame's edge, not mostly hidden)
            starts = [t for t in f.visible_frames if f.seen(t) >= WELL_VISIBLE]
            if not starts:
                continue
            track = {"video": self.video, "object_id": f.id, "height": F.size, "width": F.size,
                     "num_frames": F.T, "init_frame": starts[0], "boxes": f.boxes,
                     "absent": [t not in f.visible_frames for t in range(F.T)],
                     "visibility": [round(v, 4) for v in f.visibility],
                     "in_frame": [round(v, 4) for v in f.in_frame]}
            sot.append({"id": f"{self.vid}-t{f.id}", **track})
            expr = F.expression(f.id)
            if expr is None:
                continue
            rsot.append({"id": f"{self.vid}-r{f.id}", "expression": expr, **track})
            good = [t for t in f.visible_frames if f.seen(t) >= CLEAR_VIEW] or starts
            t = good[self.rng.integers(len(good))]
            reg.append({"id": f"{self.vid}-g{f.id}", "video": self.video, "object_id": f.id, "height": F.size,
                        "width": F.size, "frame": t, "box": f.boxes[t], "expression": expr,
                        "annotation": [{str(t): {"segmentation": self.rle(f.id, t)}}]})
        return sot, rsot, reg

    # --- video-level questions ------------------------------------------------------------------------------
    def video_questions(self) -> list[dict]:
        F, rng = self.F, self.rng
        objs = F.present
        qs: list[tuple[str, str, str, list[str]]] = []
        counts = [str(n) for n in range(0, 8)]
        qs.append(("Counting", "How many objects appear in the video?", str(len(objs)), counts))
        colour = [g.colour for g in objs][rng.integers(len(objs))] if rng.random() < 0.7 else \
            list(COLOURS)[rng.integers(len(COLOURS))]
        qs.append(("Counting", f"How many objects are {colour} when they first appear?",
                   str(sum(g.colour == colour for g in objs)), counts))
        shape = [g.shape for g in objs][rng.integers(len(objs))] if rng.random() < 0.7 else \
            SHAPES[rng.integers(len(SHAPES))]
        qs.append(("Counting", f"How many {shape}s are in the video?", str(sum(g.shape == shape for g in objs)),
                   counts))
        n_coll = sum(e.kind == "collision" for e in F.events if e.frame < F.T)
        qs.append(("Counting", "How many collisions happen in the video?", str(n_coll), counts))
        yes_no = [
            ("Does any object change colour?", any(e.kind == "colour_change" for e in F.events if e.frame < F.T)),
            ("Does any object leave the frame?", any(e.kind == "leave" for e in F.events if e.frame < F.T)),
            ("Does any object spin?", any(g.spin for g in objs)),
            ("Is any object completely hidden behind another at some point?",
             any(e.kind == "hidden" for e in F.events if e.frame < F.T)),
        ]
        q, truth = yes_no[rng.integers(len(yes_no))]
        out = []
        for n, (qtype, question, answer, pool) in enumerate(qs):
            near = sorted(pool, key=lambda c: (abs(int(c) - int(answer)), c))
            built = self.options(answer, near[1:4])
            opts, ans = built
            out.append(self._vqa(n, qtype, question, opts, ans))
        opts = ["(A) Yes", "(B) No"] if rng.random() < 0.5 else ["(A) No", "(B) Yes"]
        ans = next(o for o in opts if o.endswith("Yes" if truth else "No"))
        out.append(self._vqa(len(out), "Event", q, opts, ans))
        return out

    def _vqa(self, n, qtype, question, opts, answer) -> dict:
        rec = self._base(f"{self.vid}-v{n}", "video_qa")
        rec.update({"Question": question, "type": qtype, "options": opts, "Answer": answer, "annotation": [],
                    "conversations": [{"from": "human", "value": "<video>\n" + build_mc_prompt(question, opts)},
                                      {"from": "gpt", "value": answer}]})
        return rec

    # --- ground truth ---------------------------------------------------------------------------------------
    def ground_truth(self) -> dict:
        F, sc = self.F, self.F.scene
        objects = []
        for o in sc.objects:
            f = F.objects[o.id]
            k = o.id - 1
            frames = [{"colour": sc.colours[k][t], "centre": [round(float(v), 3) for v in sc.centres[k, t]],
                       "angle": round(float(sc.angles[k, t]) % 360, 2), "box": f.boxes[t],
                       "visibility": round(f.visibility[t], 4), "in_frame": round(f.in_frame[t], 4),
                       "segmentation": self.rle(o.id, t) if t in f.visible_frames else None}
                      for t in range(F.T)]
            objects.append({"id": o.id, "shape": o.shape, "size": o.size, "colour": f.colour, "layer": o.layer,
                            "static": o.static, "spin": o.spin, "radius": round(o.radius, 3),
                            "expression": F.expression(o.id), "frames": frames})
        return {"video": self.video, "height": F.size, "width": F.size, "num_frames": F.T,
                "fps": self.cfg.fps, "background": sc.background, "objects": objects,
                "events": [e.to_json() for e in F.events if e.frame < F.T],
                "future_events": [e.to_json() for e in F.events if e.frame >= F.T]}

    def all(self) -> VideoAnnotations:
        sot, rsot, reg = self.tracks()
        return VideoAnnotations(self.region_questions(), self.captions(), sot, rsot, reg, self.video_questions(),
                                self.ground_truth())
