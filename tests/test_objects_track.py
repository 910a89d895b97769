"""Classical trackers (flow + re-segmentation masks, the CSRT-fused box tracker), `regionlm track` and the
`--tracker` evaluation systems. Small synthetic / RegionWorld clips; real data only as short prefixes."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from regionlm.cli import main
from regionlm.errors import RegionError, RegionLMError
from regionlm.eval.benchmarks.base import Sample
from regionlm.objects.base import available, create
from regionlm.objects.classical.track import (BOX_TRACKERS, ClassicalBoxTracker, ClassicalMaskTracker,
                                              ClassicalTrackerConfig, CSRTBoxTracker)
from regionlm.objects.io import read_objects_json
from regionlm.objects.systems import load_eval_tracker
from regionlm.regions import mask_to_box, mask_to_rle
from regionlm.world import WorldConfig, make_video

from shared_data import real


def iou(a, b) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


# ------------------------------------------------------------------ synthetic clips


def textured_background(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture: gives the optical flow something to hold on to, like a real background."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    bg = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return (0.35 * bg + 40).astype(np.uint8)  # dark and dull: the object's saturated colour stands out


def disc_clip(centres, size=(96, 128), radius=10, colour=(230, 60, 40), occluder=None, seed=0):
    """Frames with a disc at each centre over a static textured background; ``occluder`` (x1, y1, x2, y2) is a
    grey block drawn over the disc. Returns (frames (T, H, W, 3), visible masks (T, H, W))."""
    h, w = size
    bg = textured_background(h, w, seed)
    yy, xx = np.mgrid[:h, :w]
    frames, masks = [], []
    for cx, cy in centres:
        f = bg.copy()
        m = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2
        f[m] = colour
        if occluder is not None:
            x1, y1, x2, y2 = occluder
            f[y1:y2, x1:x2] = (150, 150, 150)
            m = m.copy()
            m[y1:y2, x1:x2] = False
        frames.append(f)
        masks.append(m)
    return np.stack(frames), np.stack(masks)


def two_disc_clip(n: int):
    """A red disc moving right and down, a green one moving left below it: (frames, red masks, green masks)."""
    frames, red = disc_clip([(25 + 4 * t, 30 + 2 * t) for t in range(n)], colour=(230, 60, 40))
    _, green = disc_clip([(100 - 3 * t, 72) for t in range(n)], colour=(40, 200, 60))
    frames = frames.copy()
    for t in range(n):
        frames[t][green[t]] = (40, 200, 60)
    return frames, red, green


def run_tracker(frames, first_mask, **settings):
    tracker = ClassicalMaskTracker(**settings)
    tracker.start(frames[0], {7: first_mask})
    return [first_mask] + [tracker.step(f)[7] for f in frames[1:]]


# ------------------------------------------------------------------ the mask tracker


def test_follows_a_moving_disc_and_keeps_its_id():
    frames, gt = disc_clip([(25 + 4 * t, 30 + 2 * t) for t in range(12)])
    tracker = ClassicalMaskTracker()
    tracker.start(frames[0], {7: gt[0]})
    for t in range(1, len(frames)):
        out = tracker.step(frames[t])
        assert list(out) == [7]  # the caller's id, nothing invented
        assert iou(out[7], gt[t]) > 0.85, t


def test_follows_a_moving_regionworld_object():
    # The first RegionWorld test object that is always fully in view, unoccluded, large enough and moving.
    for index in range(10):
        scene, r, _ = make_video(0, "test", index, WorldConfig())
        T = r.frames.shape[0]
        for k in range(r.visible.shape[0]):
            vis, amodal = r.visible[k, :T], r.amodal[k, :T]
            boxes = [mask_to_box(m) for m in vis]
            if (vis.sum(axis=(1, 2)) >= 60).all() and (vis == amodal).all() and \
                    abs(boxes[-1][0] - boxes[0][0]) + abs(boxes[-1][1] - boxes[0][1]) >= 8:
                masks = run_tracker(r.frames, vis[0])
                ious = [iou(m, g) for m, g in zip(masks[1:], vis[1:])]
                assert min(ious) > 0.6 and np.mean(ious) > 0.85, (index, k, np.round(ious, 2))
                return
    pytest.fail("no suitable RegionWorld object in the first 10 test videos")


def test_object_that_leaves_the_frame_gets_empty_masks():
    # The disc moves right by 8 px a frame and is fully out from frame 11 on (centre x > 128 + radius).
    frames, gt = disc_clip([(60 + 8 * t, 48) for t in range(14)])
    masks = run_tracker(frames, gt[0])
    for t in range(1, 14):
        if gt[t].sum() >= 40:
            assert iou(masks[t], gt[t]) > 0.7, t
        if not gt[t].any():
            assert not masks[t].any(), t  # gone: an empty mask, not a remnant on the background


def test_object_behind_an_occluder_is_lost_then_found_again():
    # The disc passes behind a grey block (x 50..80): fully hidden on some frames, then it comes out.
    frames, gt = disc_clip([(20 + 6 * t, 48) for t in range(16)], occluder=(50, 0, 80, 96))
    masks = run_tracker(frames, gt[0])
    hidden = [t for t in range(16) if not gt[t].any()]
    back = [t for t in range(16) if t > max(hidden) and gt[t].sum() >= 0.8 * gt[0].sum()]
    assert hidden and back
    for t in hidden:
        assert masks[t].sum() <= 0.1 * gt[0].sum(), t  # not a mask on the occluder
    assert all(iou(masks[t], gt[t]) > 0.6 for t in back[1:]), [round(iou(masks[t], gt[t]), 2) for t in back]


def test_two_objects_never_overlap_and_add_and_remove_work():
    frames, gt_a, gt_b = two_disc_clip(8)
    tracker = ClassicalMaskTracker()
    tracker.start(frames[0], {1: gt_a[0]})
    out = tracker.step(frames[1])
    tracker.add(frames[1], {2: gt_b[1]})  # a new object on a later frame
    for t in range(2, 8):
        out = tracker.step(frames[t])
        assert set(out) == {1, 2}
        assert not (out[1] & out[2]).any()
        assert iou(out[1], gt_a[t]) > 0.8 and iou(out[2], gt_b[t]) > 0.8
    tracker.remove([1])
    assert set(tracker.step(frames[7])) == {2}


def test_same_input_same_tracks():
    import cv2

    _, r, _ = make_video(0, "test", 1, WorldConfig())
    vis = r.visible[:, :8]
    a = run_tracker(r.frames[:8], vis[0, 0])
    cv2.setRNGSeed(12345)  # GrabCut's k-means uses OpenCV's global RNG: the tracker must not depend on its state
    b = run_tracker(r.frames[:8], vis[0, 0])
    assert all((x == y).all() for x, y in zip(a, b))


def test_registry_and_settings():
    assert "classical" in available("tracker")
    tracker = create("tracker", "classical", refine="fusion")
    assert isinstance(tracker, ClassicalMaskTracker) and tracker.cfg.refine == "fusion"
    with pytest.raises(RegionLMError, match="unknown setting"):
        create("tracker", "classical", no_such_setting=1)
    with pytest.raises(RegionLMError, match="refine must be one of"):
        ClassicalMaskTracker(ClassicalTrackerConfig(refine="magic"))
    with pytest.raises(RegionLMError, match="grabcut_side must be 0"):
        create("tracker", "classical", grabcut_side=8)
    assert create("tracker", "classical", grabcut_side=0).cfg.grabcut_side == 0
    with pytest.raises(RegionLMError, match="no tracker named 'nope'"):
        create("tracker", "nope")
    assert set(BOX_TRACKERS) == {"classical", "csrt"}


def test_bad_tracker_inputs_are_one_line_errors():
    frames, gt = disc_clip([(30, 30), (32, 30)])
    tracker = ClassicalMaskTracker()
    with pytest.raises(RegionError, match="call start"):
        tracker.step(frames[0])
    with pytest.raises(RegionError, match="mask is empty"):
        tracker.start(frames[0], {1: np.zeros(gt[0].shape, bool)})
    with pytest.raises(RegionError, match="but the frame is 128x96"):
        tracker.start(frames[0], {1: np.ones((10, 10), bool)})
    tracker.start(frames[0], {1: gt[0]})
    with pytest.raises(RegionError, match="but the video is 128x96"):
        tracker.step(frames[1][:50])
    with pytest.raises(RegionError, match="uint8"):
        tracker.step(frames[1].astype(np.float32))


# ------------------------------------------------------------------ box trackers


def test_box_tracker_follows_a_moving_disc():
    frames, gt = disc_clip([(25 + 4 * t, 30 + 2 * t) for t in range(10)])
    tracker = ClassicalBoxTracker()
    tracker.init(frames[0], mask_to_box(gt[0]))
    for t in range(1, 10):
        box = tracker.update(frames[t])
        g = mask_to_box(gt[t])
        assert box is not None and max(abs(a - b) for a, b in zip(box, g)) <= 3, (t, box, g)
    with pytest.raises(RegionError, match="does not cover a pixel"):
        ClassicalBoxTracker().init(frames[0], (500, 500, 600, 600))
    with pytest.raises(RegionError, match="call init"):
        CSRTBoxTracker().update(frames[0])


def test_box_trackers_take_a_sliver_at_the_frame_edge():
    """A 1-pixel box on the frame's edge (an object entering) is too small for OpenCV's CSRT: CSRT reports the
    object lost instead of crashing, and the classical tracker goes on with its masks."""
    frames, _ = disc_clip([(4 * t - 8, 30) for t in range(6)], size=(64, 64))
    csrt = CSRTBoxTracker()
    csrt.init(frames[0], (0, 28, 1, 31))
    assert csrt.update(frames[1]) is None
    tracker = ClassicalBoxTracker()
    tracker.init(frames[0], (0, 28, 1, 31))
    for t in range(1, 6):
        box = tracker.update(frames[t])
        assert box is None or len(box) == 4
    # a 2x2 box in the corner: CSRT builds its filter, then fails on the next frame (OpenCV's resize of an
    # empty patch); lost, not a crash
    noise = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    for tracker in (CSRTBoxTracker(), ClassicalBoxTracker()):
        tracker.init(noise[0], (62, 62, 64, 64))
        assert all(b is None or len(b) == 4 for b in (tracker.update(noise[1]), tracker.update(noise[2])))


def test_box_tracker_on_real_video_prefix():
    from regionlm.data.vot import load_vot_sequence
    from regionlm.eval.metrics.tracking import iou_xywh
    from regionlm.video import VideoReader

    seq = load_vot_sequence(real("vot15-bag"))
    frames = VideoReader(seq.frames_dir).get_frames(range(8))
    x, y, w, h = seq.boxes_xywh[0]
    tracker = ClassicalBoxTracker()
    tracker.init(frames[0], (x, y, x + w, y + h))
    pred = [[x, y, w, h]]
    for f in frames[1:]:
        b = tracker.update(f)
        pred.append([b[0], b[1], b[2] - b[0], b[3] - b[1]])
    ious = iou_xywh(np.array(pred), seq.boxes_xywh[:8])
    assert ious.min() > 0.5, np.round(ious, 2)


def test_grabcut_refiner_on_a_scaled_crop_keeps_its_seeds_and_the_outline():
    from regionlm.objects.classical.track import RefineInput, refine_grabcut

    # a 300 x 400 crop: a textured red blob on a textured grey ground, the warped mask shifted 12 px off it
    rng = np.random.default_rng(0)
    crop = rng.integers(70, 110, (300, 400, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:300, :400]
    truth = (yy - 150) ** 2 / 90 ** 2 + (xx - 200) ** 2 / 120 ** 2 <= 1
    crop[truth] = np.array([40, 40, 200]) + rng.integers(0, 30, (int(truth.sum()), 1))  # BGR: red
    warped = np.roll(truth, 12, axis=1).astype(np.float32)
    colour = np.where(truth, 0.9, 0.1).astype(np.float32)

    def refine(side):
        return refine_grabcut(RefineInput(crop, warped, colour, band=20, colour_weight=1.0,
                                          cfg=ClassicalTrackerConfig(grabcut_side=side)))

    full, scaled = refine(0), refine(128)
    iou = lambda a, b: (a & b).sum() / (a | b).sum()  # noqa: E731
    assert iou(scaled, truth) > 0.95 and iou(full, truth) > 0.95 and iou(scaled, full) > 0.97
    assert iou(warped > 0.5, truth) < 0.9  # the refiner moved the mask back onto the object
    near = cv2.dilate((warped > 0.5).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (41, 41))) > 0
    assert not scaled[~near].any()  # outside the band stays background at full resolution
    assert ClassicalTrackerConfig().grabcut_side == 128


def test_mask_tracker_on_real_video_prefix():
    from regionlm.data.davis import load_davis
    from regionlm.eval.metrics.vos import jaccard
    from regionlm.video import VideoReader

    seq = load_davis(real("davis-car-shadow")).records[0]
    frames = VideoReader(seq.frames[0].parent).get_frames(range(6))
    gt = seq.masks[seq.object_ids[0]][:6]
    masks = run_tracker(frames, gt[0])
    ious = [float(jaccard(g, m)) for g, m in zip(gt[1:], masks[1:])]
    assert min(ious) > 0.85, np.round(ious, 3)


# ------------------------------------------------------------------ regionlm track


@pytest.fixture
def tiny_video(tmp_path):
    """A frame folder (PNG) of two moving discs, the red one's first-frame mask as a PNG, and the ground truth of
    both."""
    frames, gt, green = two_disc_clip(8)
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{t:05d}.png")
    mask = tmp_path / "first.png"
    Image.fromarray(gt[0].astype(np.uint8) * 255).save(mask)
    return folder, mask, gt, green


def test_track_cli_json_and_tracks_file(tiny_video, tmp_path, capsys):
    folder, mask, gt, green = tiny_video
    out = tmp_path / "tracks.json"
    box = ",".join(str(v) for v in mask_to_box(green[2]))  # the green disc, from its box on frame 2
    code = main(["track", str(folder), "--backend", "classical", "--region", f"mask:{mask}@0", "--region",
                 f"box:{box}@2", "--out", str(out), "--render", str(tmp_path / "tracks.mp4"), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_frames"] == 8 and (summary["height"], summary["width"]) == (96, 128)
    assert [o["id"] for o in summary["objects"]] == [1, 2]
    assert [o["start_frame"] for o in summary["objects"]] == [0, 2]
    assert summary["objects"][0]["frames"] == 8 and summary["objects"][1]["frames"] == 6
    assert summary["timing"]["fps"] > 0 and (tmp_path / "tracks.mp4").stat().st_size > 0
    result = read_objects_json(out)  # validates the objects.json schema
    first = result.objects[0]
    assert sorted(first.masks) == list(range(8))
    assert iou(first.masks[7], gt[7]) > 0.85
    assert first.masks.box(7) == list(mask_to_box(first.masks[7]))
    second = result.objects[1]
    assert sorted(second.masks) == list(range(2, 8))  # tracked forward from its own frame
    assert iou(second.masks[7], green[7]) > 0.8  # GrabCut turned the box into the disc


@pytest.mark.parametrize("make_args, words", [
    (lambda d: ["missing.mp4", "--region", "box:1,1,5,5@0"], "not found"),
    (lambda d: [d["folder"]], "at least one --region"),
    (lambda d: [d["folder"], "--region", f"mask:{d['empty']}@0"], "empty"),
    (lambda d: [d["folder"], "--region", f"mask:{d['small']}@0"], "but the frame is 128x96"),
    (lambda d: [d["folder"], "--region", f"mask:{d['mask']}@8"], "past the end"),
    (lambda d: [d["folder"], "--region", "box:200,200,300,300@0"], "outside"),
    (lambda d: [d["folder"], "--region", "blob:1,2@0"], "unknown kind"),
    (lambda d: [d["folder"], "--region", "box:1,1,5,5@0", "--backend", "hf"], "needs --segmenter"),
    (lambda d: [d["folder"], "--region", "box:1,1,5,5@0", "--backend", "sam9"], "unknown; available"),
    (lambda d: [d["folder"], "--region", "box:1,1,5,5@0", "--segmenter", "x"], "needs none"),
])
def test_track_cli_bad_input_exits_2_with_one_line(tiny_video, tmp_path, capsys, make_args, words):
    folder, mask, gt, _ = tiny_video
    empty, small = tmp_path / "empty.png", tmp_path / "small.png"
    Image.fromarray(np.zeros(gt[0].shape, np.uint8)).save(empty)
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(small)
    d = {"folder": str(folder), "mask": str(mask), "empty": str(empty), "small": str(small)}
    out = tmp_path / "t.json"
    argv = make_args(d)
    if "--backend" not in argv:  # the default backend is the model's; these cases are about the mask trackers
        argv += ["--backend", "classical"]
    assert main(["track", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("regionlm: error:") and words in err, err
    assert not out.exists()


# ------------------------------------------------------------------ evaluation systems


class _Bench:
    def __init__(self, task, name="bench", gives_init_box=True):
        self.task, self.name, self.gives_init_box = task, name, gives_init_box


def test_eval_systems_track_and_segment(tiny_video):
    folder, _, gt, _ = tiny_video
    frames = tuple(str(p) for p in sorted(Path(folder).iterdir()))
    x1, y1, x2, y2 = mask_to_box(gt[0])
    sample = Sample(id="s", task="track", frames=frames, num_frames=8, init_box=(x1, y1, x2 - x1, y2 - y1))
    for name in ("classical", "csrt"):
        boxes = load_eval_tracker(name, benchmark=_Bench("track")).track(sample)
        assert len(boxes) == 8 and boxes[0] == [x1, y1, x2 - x1, y2 - y1]
        b = boxes[-1]
        g = mask_to_box(gt[-1])
        assert abs(b[0] - g[0]) <= 4 and abs(b[1] - g[1]) <= 4, (name, b, g)
    vos = Sample(id="v", task="segment", frames=frames, num_frames=8, height=96, width=128, object_ids=(3,),
                 regions=({0: {"segmentation": mask_to_rle(gt[0])}},))
    system = load_eval_tracker("classical", benchmark=_Bench("segment"))
    assert system.config["tracker"] == "classical" and system.config["settings"]["mask"]["refine"]
    masks = system.segment(vos)
    assert list(masks) == ["3"] and len(masks["3"]) == 8
    from regionlm.regions import rle_to_mask

    assert iou(rle_to_mask(masks["3"][-1]), gt[-1]) > 0.85


def test_eval_systems_bad_names_and_tasks():
    with pytest.raises(RegionLMError, match="unknown; available: classical, csrt"):
        load_eval_tracker("nope", benchmark=_Bench("track"))
    with pytest.raises(RegionLMError, match="boxes only"):
        load_eval_tracker("csrt", benchmark=_Bench("segment", "davis"))
    with pytest.raises(RegionLMError, match="needs the first box"):
        load_eval_tracker("classical", benchmark=_Bench("track", "world-rsot", gives_init_box=False))
