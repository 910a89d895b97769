"""The object pipeline: NMS, Hungarian association, key-frame splitters, objects.json, the pipeline on RegionWorld,
and `regionlm objects`."""

import itertools
import json

import cv2
import numpy as np
import pytest

from regionlm.cli import main
from regionlm.errors import DataFormatError, RegionLMError
from regionlm.objects.base import Detections, ObjectsResult, ObjectTrack, Tracker, create
from regionlm.objects.classical.detect import ClassicalDetector, box_iou, nms
from regionlm.objects.classical.segment import ClassicalSegmenter
from regionlm.objects.io import RLEMasks, read_objects_json, write_objects_json
from regionlm.objects.keyframes import NoSplitter, UniformSplitter, VideoOrionSplitter, colour_name, frame_tags
from regionlm.objects.pipeline import ObjectPipeline, PipelineConfig, hungarian, mask_iou_matrix, match
from regionlm.regions import box_to_mask, mask_to_box
from regionlm.video import write_video
from regionlm.world import WorldConfig, make_video

from shared_data import real

# ------------------------------------------------------------------ NMS and boxes


def test_box_iou_matches_hand_computed_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [2, 2, 4, 4]])
    np.testing.assert_allclose(box_iou(a, b)[0], [1.0, 50 / 150, 0.0, 4 / 100])


def test_nms_keeps_best_of_each_cluster_in_score_order():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [21, 21, 31, 31], [0, 0, 10, 10]])
    scores = np.array([0.9, 0.95, 0.5, 0.6, 0.1])
    keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [1, 3]
    # A looser threshold keeps overlapping boxes whose IoU is below it.
    assert sorted(nms(boxes, scores, iou_threshold=0.9).tolist()) == [0, 1, 2, 3]
    assert nms(np.zeros((0, 4)), np.zeros(0)).tolist() == []


# ------------------------------------------------------------------ Hungarian


def _brute_force(cost):
    n, m = cost.shape
    best = np.inf
    if n <= m:
        for cols in itertools.permutations(range(m), n):
            best = min(best, sum(cost[i, c] for i, c in enumerate(cols)))
    else:
        for rows in itertools.permutations(range(n), m):
            best = min(best, sum(cost[r, j] for j, r in enumerate(rows)))
    return best


def test_hungarian_is_optimal_on_random_rectangular_matrices():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n, m = rng.integers(1, 6, size=2)
        cost = rng.random((n, m)) * rng.choice([1, 100])
        if rng.random() < 0.3:
            cost = np.round(cost)  # ties
        rows, cols = hungarian(cost)
        assert len(rows) == min(n, m) and len(set(cols.tolist())) == len(cols) and len(set(rows.tolist())) == len(rows)
        assert cost[rows, cols].sum() == pytest.approx(_brute_force(cost))


def test_hungarian_beats_greedy_where_greedy_is_wrong():
    cost = np.array([[1.0, 2.0], [2.0, 100.0]])  # greedy takes (0,0) first and pays 101
    rows, cols = hungarian(cost)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]


def test_match_drops_pairs_above_the_gate():
    cost = np.array([[0.1, 0.9], [0.95, 0.97]])
    assert match(cost, 0.5) == [(0, 0)]
    assert match(np.zeros((0, 3)), 0.5) == []


def test_mask_iou_matrix():
    a = box_to_mask([0, 0, 10, 10], 20, 20)
    b = box_to_mask([5, 0, 15, 10], 20, 20)
    c = np.zeros((20, 20), bool)
    iou = mask_iou_matrix([a, b], [a, b, c])
    np.testing.assert_allclose(iou, [[1, 50 / 150, 0], [50 / 150, 1, 0]])


# ------------------------------------------------------------------ association (stand-in parts)


class ScriptedDetector:
    """Boxes per frame from a script: {frame: [box, ...]}."""

    def __init__(self, script):
        self.script = script
        self.t = 0

    def detect(self, frame, prompts=None):
        boxes = self.script.get(self.t, [])
        self.t += 1
        return Detections(np.array(boxes, float).reshape(-1, 4), np.ones(len(boxes)), ["object"] * len(boxes))


class BoxSegmenter:
    def segment(self, frame, boxes=None, points=None):
        masks = [box_to_mask(b, *frame.shape[:2]) for b in boxes]
        return np.stack(masks) if masks else np.zeros((0,) + frame.shape[:2], bool)


class StillTracker(Tracker):
    """Keeps each mask where it was seeded; ``drop`` lists frames (step calls) where every object is lost."""

    def __init__(self, drop=()):
        self.masks, self.drop, self.steps = {}, set(drop), 0

    def start(self, frame, masks):
        self.masks = {i: m.copy() for i, m in masks.items()}

    def add(self, frame, masks):
        self.masks.update({i: m.copy() for i, m in masks.items()})

    def step(self, frame):
        self.steps += 1
        if self.steps in self.drop:
            self.masks = {i: np.zeros_like(m) for i, m in self.masks.items()}
        return {i: m.copy() for i, m in self.masks.items()}


def _run_scripted(script, n=10, drop=(), every_frame_key=True):
    frames = [np.zeros((40, 60, 3), np.uint8) for _ in range(n)]
    cfg = PipelineConfig(min_track_frames=1, new_min_score=0.5)
    splitter = (lambda num: UniformSplitter(k=num, num_frames=num)) if every_frame_key else None
    pipe = ObjectPipeline(cfg, detector=ScriptedDetector(script), segmenter=BoxSegmenter(),
                          tracker=StillTracker(drop), splitter_factory=splitter)
    return pipe.run_frames(enumerate(frames), n, 40, 60, "scripted")


def _ids_at(result, t):
    return {o.id: mask_to_box(o.masks[t]) for o in result.objects if t in o.masks}


def test_refound_object_keeps_its_id_and_a_new_one_gets_a_new_id():
    a = lambda t: [2 + t, 5, 12 + t, 15]  # moves right 1 px per frame
    b = [40, 20, 50, 30]
    script = {t: [a(t)] + ([b] if t >= 5 else []) for t in range(10)}
    result = _run_scripted(script)
    assert [o.id for o in result.objects] == [1, 2]
    first, second = result.objects
    assert sorted(first.masks) == list(range(10))  # A: one id on every frame
    assert sorted(second.masks) == list(range(5, 10))  # B: a new id from frame 5 on
    assert mask_to_box(second.masks[5]) == tuple(b)
    # A is re-seeded when the still tracker falls behind, so its mask stays near the detection.
    assert box_iou(np.array([mask_to_box(first.masks[9])]), np.array([a(9)]))[0, 0] >= 0.75 * 0.75


def test_object_lost_for_a_while_comes_back_with_its_id():
    a = [10, 10, 20, 20]
    # The tracker loses everything on frames 3-5 and the detector sees nothing there; the object is then found
    # again where it was: it must keep id 1, not become object 2.
    script = {t: ([] if 3 <= t <= 5 else [a]) for t in range(10)}
    result = _run_scripted(script, drop={3})
    assert [o.id for o in result.objects] == [1]
    assert sorted(result.objects[0].masks) == [0, 1, 2, 6, 7, 8, 9]


def test_a_track_holding_two_objects_is_split_when_they_show_apart():
    # Frames 0-2: one box around two touching objects; from frame 3 on they are detected apart. The merged track
    # keeps id 1 on one of them and the other becomes object 2; no key frame is needed for that.
    script = {t: [[10, 10, 30, 20]] if t < 3 else [[10, 10, 20, 20], [20, 10, 30, 20]] for t in range(8)}
    frames = [np.zeros((40, 60, 3), np.uint8) for _ in range(8)]
    pipe = ObjectPipeline(PipelineConfig(min_track_frames=1), detector=ScriptedDetector(script),
                          segmenter=BoxSegmenter(), tracker=StillTracker(),
                          splitter_factory=lambda n: NoSplitter(num_frames=n))
    result = pipe.run_frames(enumerate(frames), 8, 40, 60)
    assert pipe.keyframes == [0]
    assert [o.id for o in result.objects] == [1, 2]
    assert mask_to_box(result.objects[0].masks[0]) == (10, 10, 30, 20)
    boxes_at_5 = sorted(mask_to_box(o.masks[5]) for o in result.objects)
    assert boxes_at_5 == [(10, 10, 20, 20), (20, 10, 30, 20)]


def test_a_new_object_is_carried_back_over_earlier_frames():
    script = {t: [[5, 5, 15, 15]] + ([[30, 10, 40, 20]] if t >= 5 else []) for t in range(8)}
    frames = [np.zeros((40, 60, 3), np.uint8) for _ in range(8)]
    for backfill, first in ((0, 5), (2, 3)):
        pipe = ObjectPipeline(PipelineConfig(min_track_frames=1, backfill=backfill), detector=ScriptedDetector(script),
                              segmenter=BoxSegmenter(), tracker=StillTracker(), tracker_factory=StillTracker,
                              splitter_factory=lambda n: UniformSplitter(k=n, num_frames=n))
        result = pipe.run_frames(enumerate(frames), 8, 40, 60)
        assert min(result.objects[1].masks) == first
        assert min(result.objects[0].masks) == 0


def test_short_tracks_are_dropped_and_max_objects_keeps_the_best():
    boxes = [[0, 0, 8, 8], [20, 0, 28, 8], [40, 0, 48, 8]]
    script = {t: boxes[:2] + ([boxes[2]] if t == 4 else []) for t in range(8)}
    frames = [np.zeros((40, 60, 3), np.uint8) for _ in range(8)]
    cfg = PipelineConfig(min_track_frames=3, max_objects=64)
    pipe = ObjectPipeline(cfg, detector=ScriptedDetector(script), segmenter=BoxSegmenter(), tracker=StillTracker(),
                          splitter_factory=lambda n: NoSplitter(num_frames=n))
    result = pipe.run_frames(enumerate(frames), 8, 40, 60)
    # The third box shows up on one frame, the still tracker keeps it: it is tracked, not dropped...
    assert len(result.objects) == 3
    cfg.max_objects = 2
    pipe = ObjectPipeline(cfg, detector=ScriptedDetector(script), segmenter=BoxSegmenter(), tracker=StillTracker(),
                          splitter_factory=lambda n: NoSplitter(num_frames=n))
    result = pipe.run_frames(enumerate(frames), 8, 40, 60)
    # ...but with a cap of 2 the two seen from frame 0 (higher score: visible on more frames) are kept.
    assert [mask_to_box(o.masks[0]) for o in result.objects] == [tuple(boxes[0]), tuple(boxes[1])]


# ------------------------------------------------------------------ key-frame splitters


def test_videoorion_rule_on_a_hand_made_tag_sequence():
    s = VideoOrionSplitter(theta_a=3, theta_b=2)
    seq = [
        ({"a", "b", "c", "d"}, True),  # frame 0: always the first key frame
        ({"a", "b", "c", "d", "e"}, False),  # overlap 4 >= 2
        ({"x", "y"}, False),  # 2 tags <= theta_a: noisy, skipped
        ({"x", "y", "z"}, False),  # 3 tags <= theta_a: still noisy (at most theta_a)
        (None, False),  # no detection ran: skipped
        ({"x", "y", "z", "w"}, True),  # overlap with {a,b,c,d} is 0 < 2: new key frame
        ({"x", "y", "q", "r"}, False),  # overlap 2 with {x,y,z,w}: not below theta_b
        ({"x", "q", "s", "t"}, True),  # overlap 1 < 2
    ]
    assert [s.is_keyframe(i, tags) for i, (tags, _) in enumerate(seq)] == [want for _, want in seq]


def test_videoorion_thresholds_are_parameters():
    s = VideoOrionSplitter(theta_a=1, theta_b=1)
    assert [s.is_keyframe(i, t) for i, t in enumerate([{"a"}, {"b", "c"}, {"b", "d"}, {"e", "f"}])] == \
        [True, True, False, True]


def test_uniform_and_none_splitters():
    u = UniformSplitter(k=4, num_frames=10)
    assert [i for i in range(10) if u.is_keyframe(i)] == [0, 2, 5, 7]
    u = UniformSplitter(k=50, num_frames=3)
    assert [u.is_keyframe(i) for i in range(3)] == [True, True, True]
    n = NoSplitter()
    assert [n.is_keyframe(i) for i in range(4)] == [True, False, False, False]


def test_splitters_are_in_the_registry_and_check_the_call_order():
    s = create("splitter", "videoorion", num_frames=5)
    assert isinstance(s, VideoOrionSplitter) and s.needs_tags
    s.is_keyframe(0, {"a"})
    with pytest.raises(ValueError, match="expected frame 1"):
        s.is_keyframe(2, {"a"})
    with pytest.raises(RegionLMError, match="no splitter named 'nope'"):
        create("splitter", "nope")


def test_frame_tags_name_colours_for_class_agnostic_detections():
    frame = np.zeros((20, 40, 3), np.uint8)
    frame[2:10, 2:10] = (220, 40, 40)
    frame[2:10, 20:30] = (45, 95, 235)
    dets = Detections(np.array([[2, 2, 10, 10], [20, 2, 30, 10]]), np.ones(2), ["object", "object"])
    assert frame_tags(frame, dets) == {"red object", "blue object"}
    labelled = Detections(np.array([[2, 2, 10, 10]]), np.ones(1), ["person"])
    assert frame_tags(frame, labelled) == {"person"}
    assert colour_name((238, 238, 238)) == "white" and colour_name((20, 20, 20)) == "black"


# ------------------------------------------------------------------ objects.json


def _result(tmp_masks=None):
    h, w = 12, 16
    a = {0: box_to_mask([1, 1, 5, 5], h, w), 2: box_to_mask([2, 2, 6, 7], h, w), 1: np.zeros((h, w), bool)}
    b = {1: box_to_mask([8, 3, 16, 12], h, w)}
    return ObjectsResult("clip.mp4", h, w, 3, [ObjectTrack(1, "object", 0.9, RLEMasks(a)),
                                             ObjectTrack(2, "ball", 0.5, b)])


def test_objects_json_round_trip(tmp_path):
    result = _result()
    path = write_objects_json(tmp_path / "objects.json", result)
    doc = json.loads(path.read_text())
    assert list(doc) == ["video", "height", "width", "num_frames", "objects"]
    assert doc["objects"][0]["frames"].keys() == {"0", "2"}  # the empty frame 1 is not listed
    assert doc["objects"][0]["frames"]["2"]["box"] == [2, 2, 6, 7]
    assert set(doc["objects"][0]) == {"id", "label", "score", "frames"}
    assert doc["objects"][1]["label"] == "ball"
    back = read_objects_json(path)
    assert (back.video, back.height, back.width, back.num_frames) == ("clip.mp4", 12, 16, 3)
    for orig, got in zip(result.objects, back.objects):
        assert (got.id, got.label, got.score) == (orig.id, orig.label, orig.score)
        frames = [f for f in sorted(orig.masks) if np.asarray(orig.masks[f]).any()]
        assert list(got.masks) == frames
        for f in frames:
            np.testing.assert_array_equal(got.masks[f], orig.masks[f])
    # Writing what was read gives the same bytes.
    assert write_objects_json(tmp_path / "again.json", back).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.pop("width"), "width"),
    (lambda d: d["objects"][0].pop("score"), "score"),
    (lambda d: d["objects"][0].update(score="high"), "score"),
    (lambda d: d["objects"][1].update(id=1), "id"),
    (lambda d: d["objects"][0]["frames"].update({"7": d["objects"][0]["frames"]["0"]}), "frames"),
    (lambda d: d["objects"][0]["frames"]["0"].update(box=[1, 2, 3]), "frames.0.box"),
    (lambda d: d["objects"][0]["frames"]["0"].update(box=[5, 1, 1, 5]), "frames.0.box"),
    (lambda d: d["objects"][0]["frames"]["0"]["segmentation"].update(size=[3, 3]), "frames.0.segmentation"),
    (lambda d: d["objects"][0]["frames"]["0"]["segmentation"].update(counts=17), "frames.0.segmentation"),
    (lambda d: d["objects"][0]["frames"]["0"].pop("segmentation"), "frames.0.segmentation"),
])
def test_malformed_objects_json_names_file_object_and_field(tmp_path, edit, field):
    path = write_objects_json(tmp_path / "objects.json", _result())
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError) as err:
        read_objects_json(path)
    assert err.value.field == field
    assert "objects.json" in str(err.value)


def test_objects_json_that_is_not_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"video": ')
    with pytest.raises(DataFormatError, match="broken.json: invalid JSON"):
        read_objects_json(path)
    with pytest.raises(DataFormatError, match="no such file"):
        read_objects_json(tmp_path / "missing.json")


# ------------------------------------------------------------------ classical parts


def test_classical_segmenter_box_and_point_on_a_small_frame():
    frame = np.full((64, 64, 3), 30, np.uint8)
    yy, xx = np.mgrid[:64, :64]
    disk = (xx - 30) ** 2 + (yy - 25) ** 2 <= 81
    frame[disk] = (235, 215, 40)
    frame[40:60, 5:20] = (45, 95, 235)  # a second object inside the box's margin must not leak in
    seg = ClassicalSegmenter()
    box_mask, = seg.segment(frame, boxes=np.array([[20, 15, 41, 36]]))
    point_mask, = seg.segment(frame, points=np.array([[30, 25]]))
    for m in (box_mask, point_mask):
        assert (m & disk).sum() / (m | disk).sum() >= 0.9
    with pytest.raises(RegionLMError, match="outside"):
        seg.segment(frame, points=np.array([[70, 5]]))


def test_classical_detector_finds_objects_on_textured_backgrounds():
    # RegionWorld videos with plain, noise, stripes and checker backgrounds: most objects are proposed.
    found = total = 0
    kinds = set()
    for index in range(16):  # test videos 12 and 14 have checker backgrounds
        scene, r, _ = make_video(0, "test", index, WorldConfig())
        kinds.add(scene.background["kind"])
        det = ClassicalDetector()
        d = det.detect(r.frames[0])
        for k in range(r.visible.shape[0]):
            box = mask_to_box(r.visible[k, 0])
            if box is None or r.visible[k, 0].sum() < 16:
                continue
            total += 1
            found += bool(len(d)) and box_iou(np.array([box]), d.boxes).max() >= 0.5
    assert kinds == {"plain", "noise", "stripes", "checker"}
    assert found / total >= 0.8


def test_classical_detector_gives_proposals_on_a_real_frame():
    from regionlm.video import VideoReader

    with VideoReader(real("davis-car-shadow/frames")) as r:
        frames = r.get_frames(range(3))
    det = ClassicalDetector()
    for f in frames:
        d = det.detect(f)
    assert 1 <= len(d) <= det.config.max_detections
    assert np.all(d.boxes[:, 2] > d.boxes[:, 0]) and np.all(d.boxes[:, 2] <= f.shape[1])
    # The car (ground truth mask) is covered by at least one confident proposal.
    from PIL import Image

    gt = np.asarray(Image.open(sorted(real("davis-car-shadow/masks").iterdir())[2])) > 0
    gt = gt.any(-1) if gt.ndim == 3 else gt
    car = np.array([mask_to_box(gt)])
    inside = [(b[0] >= car[0, 0] - 5 and b[2] <= car[0, 2] + 5 and b[1] >= car[0, 1] - 5 and b[3] <= car[0, 3] + 5)
              for b in d.boxes[d.scores >= 0.5]]
    assert any(inside)


# ------------------------------------------------------------------ the pipeline on RegionWorld


def _recall(result, rendering, min_area=16):
    hit = total = 0
    for t in range(rendering.frames.shape[0]):
        gt = [m for m in rendering.visible[:, t] if m.sum() >= min_area]
        pred = [o.masks[t] for o in result.objects if t in o.masks]
        iou = mask_iou_matrix(gt, pred)
        hit += len(match(1 - iou, 0.5))
        total += len(gt)
    return hit / total


@pytest.mark.parametrize("index", [7, 15])
def test_pipeline_finds_the_objects_of_a_regionworld_video(index):
    scene, r, _ = make_video(0, "test", index, WorldConfig())
    T, H, W = r.frames.shape[:3]
    result = ObjectPipeline(PipelineConfig()).run_frames(enumerate(r.frames), T, H, W, "world")
    assert _recall(result, r) >= 0.9
    assert len(result.objects) <= len(scene.objects) + 2
    assert {"detect", "segment", "track", "total", "fps"} <= set(result.timing)
    assert result.timing["frames"] == T


def test_pipeline_finds_thin_objects_in_a_decoded_video(tmp_path):
    """A 64x64 video as RegionWorld writes it (H.264, 4:2:0 colour): its two 2-pixel red rings came back in
    fragments before the chroma was smoothed along the luma (objects.chroma)."""
    from regionlm.video import VideoReader
    from regionlm.world.generate import VIDEO_OPTIONS

    scene, r, _ = make_video(2, "test", 9, WorldConfig())
    path = tmp_path / "rings.mp4"
    write_video(path, r.frames, fps=8, options=VIDEO_OPTIONS)
    with VideoReader(path) as reader:
        frames = reader.get_frames(range(reader.num_frames))
    T, H, W = frames.shape[:3]
    result = ObjectPipeline(PipelineConfig()).run_frames(enumerate(frames), T, H, W, str(path))
    assert _recall(result, r) >= 0.9
    assert len(result.objects) <= len(scene.objects) + 2


def _lab_channel(img: np.ndarray, c: int) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2LAB)[..., c].astype(float)


def test_smooth_chroma_keeps_luma_and_flat_colour():
    from regionlm.objects.chroma import smooth_chroma

    _, r, _ = make_video(2, "test", 9, WorldConfig())
    frame = r.frames[0]
    out = smooth_chroma(frame)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.abs(_lab_channel(out, 0) - _lab_channel(frame, 0)).max() <= 2  # colour only (Lab -> RGB rounding)
    flat = np.zeros((16, 16, 3), np.uint8)
    flat[:, :8] = (200, 40, 40)  # two flat colours side by side stay as they are
    flat[:, 8:] = (40, 40, 200)
    assert np.abs(smooth_chroma(flat).astype(int) - flat).max() <= 2
    # 2x2 chroma blocks inside one object of uniform luma (4:2:0 by hand) come out (nearly) uniform
    lab = cv2.cvtColor(np.full((16, 16, 3), (200, 40, 40), np.uint8), cv2.COLOR_RGB2LAB).astype(int)
    checker = (np.arange(16)[:, None] // 2 + np.arange(16)[None] // 2) % 2
    lab[..., 1] += 12 * checker - 6
    blocky = cv2.cvtColor(lab.astype(np.uint8), cv2.COLOR_LAB2RGB)
    inner = (slice(2, -2), slice(2, -2))  # away from the border, where the filter's window is cut
    assert _lab_channel(smooth_chroma(blocky), 1)[inner].std() < 0.5 * _lab_channel(blocky, 1)[inner].std()


# ------------------------------------------------------------------ CLI


@pytest.fixture(scope="module")
def world_mp4(tmp_path_factory):
    _, r, _ = make_video(0, "test", 7, WorldConfig())
    path = tmp_path_factory.mktemp("objects") / "world.mp4"
    write_video(path, r.frames, fps=8, options={"crf": "8", "preset": "veryfast"})
    return path


def test_cli_objects_json_summary_and_file(world_mp4, tmp_path, capsys):
    out = tmp_path / "objects.json"
    render = tmp_path / "render.mp4"
    assert main(["objects", str(world_mp4), "--out", str(out), "--render", str(render), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"video", "out", "objects", "num_frames", "height", "width", "keyframes", "timing", "render"} <= set(summary)
    assert summary["num_frames"] == 16 and (summary["height"], summary["width"]) == (64, 64)
    doc = read_objects_json(out)
    assert len(doc.objects) == summary["objects"] >= 2
    for obj in doc.objects:
        for f in obj.masks:
            assert obj.masks[f].any() and mask_to_box(obj.masks[f]) == tuple(obj.masks.box(f))
    from regionlm.video import VideoReader

    with VideoReader(render) as r:
        assert (r.num_frames, r.height, r.width) == (16, 64, 64)


def test_cli_max_objects_caps_the_list(world_mp4, tmp_path, capsys):
    out = tmp_path / "objects.json"
    assert main(["objects", str(world_mp4), "--out", str(out), "--max-objects", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["objects"] == 1
    assert len(read_objects_json(out).objects) == 1


def test_cli_uniform_keyframes(world_mp4, tmp_path, capsys):
    out = tmp_path / "objects.json"
    assert main(["objects", str(world_mp4), "--out", str(out), "--keyframes", "uniform", "--num-keyframes", "4",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["keyframes"] == 4


@pytest.mark.parametrize("args, message", [
    (["missing.mp4"], "video not found"),
    (["{video}", "--max-objects", "0"], "--max-objects must be at least 1"),
    (["{video}", "--backend", "hf"], "--backend hf needs --detector"),
    (["{video}", "--detector", "/nowhere"], "the classical backend needs none"),
    (["{empty}"], "has no .jpg/.png images"),
])
def test_cli_bad_input_exits_2_with_one_line(world_mp4, tmp_path, capsys, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.format(video=world_mp4, empty=empty) for a in args]
    assert main(["objects", *args, "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.json").exists()


def test_a_video_without_objects_gives_an_empty_list(tmp_path, capsys):
    frames = np.full((6, 48, 64, 3), 40, np.uint8)
    path = tmp_path / "plain.mp4"
    write_video(path, frames, fps=8)
    out = tmp_path / "objects.json"
    assert main(["objects", str(path), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["objects"] == 0
    assert read_objects_json(out).objects == []
