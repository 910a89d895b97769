"""The hf object backend on tiny random checkpoints of the real transformers classes, saved to a tmp folder and
loaded back through the registered factories (see tiny_hf_objects.py). Random weights say nothing about quality:
these tests check the plumbing (shapes, coordinates, labels from prompts, ids, bounded memory, errors), and where
transformers has its own post-processing, that ours agrees with it."""

import json

import numpy as np
import pytest
import torch

import tiny_hf_objects as tiny
from regionlm.errors import RegionError, RegionLMError
from regionlm.objects.base import Detections, available, create

H, W = 48, 80  # non-square frames catch swapped axes


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models are dominated by per-op overhead; one thread avoids oversubscribing a shared 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_objects")
    return {"owlv2": tiny.build_owlv2(root / "owlv2"), "gdino": tiny.build_grounding_dino(root / "gdino"),
            "sam": tiny.build_sam(root / "sam"), "sam2": tiny.build_sam2(root / "sam2"),
            "sam2_video": tiny.build_sam2_video(root / "sam2_video"),
            "sam3_tracker": tiny.build_sam3_tracker(root / "sam3_tracker"),
            "sam3_tracker_video": tiny.build_sam3_tracker_video(root / "sam3_tracker_video")}


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (64, H, W, 3), dtype=np.uint8)


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def rect(y1, y2, x1, x2):
    m = np.zeros((H, W), bool)
    m[y1:y2, x1:x2] = True
    return m


def check_detections(det, labels):
    assert isinstance(det, Detections)
    assert det.boxes.shape == (len(det), 4) and det.scores.shape == (len(det),)
    assert set(det.labels) <= set(labels)
    assert np.all(det.boxes[:, 0] >= 0) and np.all(det.boxes[:, 2] <= W)
    assert np.all(det.boxes[:, 1] >= 0) and np.all(det.boxes[:, 3] <= H)
    assert np.all(det.boxes[:, 2] > det.boxes[:, 0]) and np.all(det.boxes[:, 3] > det.boxes[:, 1])
    assert np.all(np.diff(det.scores) <= 0)  # best first
    assert np.all((det.scores >= 0) & (det.scores <= 1))


def clip_rows(boxes, scores, labels):
    """HF post-processed rows clipped to the frame, empty boxes dropped (what our detectors keep)."""
    boxes = boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, W)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, H)
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[ok], scores[ok], [lab for lab, k in zip(labels, ok) if k]


def test_registered(ckpt):
    assert {"hf", "hf-owlv2", "hf-grounding-dino"} <= set(available("detector"))
    assert "hf-sam" in available("segmenter")
    assert "hf" in available("tracker")


# ---------------------------------------------------------------------- OWLv2


def test_owlv2_text_prompts_match_transformers_postprocessing(ckpt, frames):
    from PIL import Image
    from transformers import AutoProcessor, Owlv2ForObjectDetection

    prompts = ["cat", "dog", "red ball"]
    det = create("detector", "hf-owlv2", checkpoint=ckpt["owlv2"], threshold=0.0, nms_iou=1.0).detect(
        frames[0], prompts)
    check_detections(det, prompts)
    assert len(det) > 0

    processor = AutoProcessor.from_pretrained(ckpt["owlv2"])
    model = Owlv2ForObjectDetection.from_pretrained(ckpt["owlv2"]).eval()
    inputs = processor(text=[prompts], images=Image.fromarray(frames[0]), return_tensors="pt",
                       padding="max_length", max_length=16, truncation=True)
    with torch.no_grad():
        out = model(**inputs)
    side = max(H, W)  # OWLv2 pads to a square: boxes are relative to it
    ref = processor.post_process_grounded_object_detection(out, threshold=0.0, target_sizes=[(side, side)],
                                                           text_labels=[prompts])[0]
    boxes, scores, labels = clip_rows(ref["boxes"].numpy(), ref["scores"].numpy(), ref["text_labels"])
    order = np.argsort(-scores, kind="stable")
    assert len(det) == len(order)
    np.testing.assert_allclose(det.boxes, boxes[order], atol=1e-3)
    np.testing.assert_allclose(det.scores, scores[order], atol=1e-5)
    assert det.labels == [labels[i] for i in order]


def test_owlv2_prompts_set_the_labels(ckpt, frames):
    detector = create("detector", "hf-owlv2", checkpoint=ckpt["owlv2"], threshold=0.0)
    for prompts in (["car"], "person, bag"):
        det = detector.detect(frames[1], prompts)
        expected = ["car"] if prompts == ["car"] else ["person", "bag"]
        check_detections(det, expected)
        assert len(det) > 0


def test_owlv2_without_prompts_is_class_agnostic(ckpt, frames):
    det = create("detector", "hf-owlv2", checkpoint=ckpt["owlv2"], objectness_threshold=0.0, nms_iou=1.0,
                 max_detections=5).detect(frames[2])
    check_detections(det, ["object"])
    assert 0 < len(det) <= 5


# ---------------------------------------------------------------------- Grounding DINO


def test_grounding_dino_text_prompts_match_transformers_boxes(ckpt, frames):
    from PIL import Image
    from transformers import AutoProcessor, GroundingDinoForObjectDetection

    prompts = ["cat", "red ball", "dog"]
    det = create("detector", "hf-grounding-dino", checkpoint=ckpt["gdino"], threshold=0.0, nms_iou=1.0).detect(
        frames[0], prompts)
    check_detections(det, prompts)
    assert len(det) > 0
    assert len(set(det.labels)) > 1  # labels come from the best-matching phrase, not always the first

    processor = AutoProcessor.from_pretrained(ckpt["gdino"])
    model = GroundingDinoForObjectDetection.from_pretrained(ckpt["gdino"]).eval()
    inputs = processor(images=Image.fromarray(frames[0]), text="cat. red ball. dog.", return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    ref = processor.post_process_grounded_object_detection(out, inputs["input_ids"], threshold=0.0,
                                                           text_threshold=0.0, target_sizes=[(H, W)])[0]
    boxes, scores, _ = clip_rows(ref["boxes"].numpy(), ref["scores"].numpy(), list(ref["text_labels"]))
    assert len(det) == len(boxes)
    for box, score in zip(det.boxes, det.scores):
        match = np.flatnonzero(np.abs(boxes - box).max(axis=1) < 1e-3)
        assert match.size >= 1
        # transformers scores a box by its best token over the whole text (CLS, "." included); ours by the best
        # token of a prompt's own phrase, so never more.
        assert score <= scores[match].max() + 1e-6


def test_grounding_dino_default_prompt_and_dots(ckpt, frames):
    detector = create("detector", "hf-grounding-dino", checkpoint=ckpt["gdino"], threshold=0.0, max_detections=3)
    det = detector.detect(frames[3])
    check_detections(det, ["object"])
    assert 0 < len(det) <= 3
    det = detector.detect(frames[3], ["cat.dog", "ball"])  # a dot inside a prompt must not split it
    check_detections(det, ["cat.dog", "ball"])
    det = detector.detect(frames[3], ["zebra", "dog"])  # "zebra" is not in the tiny vocabulary: [UNK], still a phrase
    check_detections(det, ["zebra", "dog"])
    none = create("detector", "hf-grounding-dino", checkpoint=ckpt["gdino"], threshold=1.0).detect(frames[3], ["dog"])
    assert len(none) == 0 and none.boxes.shape == (0, 4) and none.labels == []


def test_hf_detector_picks_the_model_by_config(ckpt):
    from regionlm.objects.hf.detectors import GroundingDinoDetector, OWLv2Detector

    assert isinstance(create("detector", "hf", checkpoint=ckpt["owlv2"]), OWLv2Detector)
    assert isinstance(create("detector", "hf", checkpoint=ckpt["gdino"]), GroundingDinoDetector)
    with pytest.raises(RegionLMError, match="'owlv2' or 'grounding-dino'"):
        create("detector", "hf", checkpoint=ckpt["sam"])


# ---------------------------------------------------------------------- segmenter


@pytest.mark.parametrize("kind", ["sam", "sam2", "sam2_video", "sam3_tracker", "sam3_tracker_video"])
def test_segmenter_masks_on_the_frame(ckpt, frames, kind):
    seg = create("segmenter", "hf-sam", checkpoint=ckpt[kind])
    boxes = np.array([[5, 5, 30, 30], [10, 10, 70, 40], [0, 0, W, H]], dtype=np.float32)
    masks = seg.segment(frames[0], boxes=boxes)
    assert masks.shape == (3, H, W) and masks.dtype == bool
    points = np.array([[5, 5], [60, 30]], dtype=np.float32)
    masks_p = seg.segment(frames[0], points=points)
    assert masks_p.shape == (2, H, W) and masks_p.dtype == bool
    both = seg.segment(frames[0], boxes=boxes[:2], points=points)
    assert both.shape == (2, H, W)
    assert seg.segment(frames[0], boxes=np.zeros((0, 4))).shape == (0, H, W)
    # Prompts are decoded in chunks over one image encoding: chunking must not change the result.
    chunked = create("segmenter", "hf-sam", checkpoint=ckpt[kind], batch_size=1).segment(frames[0], boxes=boxes)
    np.testing.assert_array_equal(chunked, masks)


def test_sam_segmenter_agrees_with_transformers_processor(ckpt, frames):
    from PIL import Image
    from transformers import SamModel, SamProcessor
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    boxes = [[5.0, 5.0, 30.0, 30.0], [10.0, 10.0, 70.0, 40.0]]
    ours = create("segmenter", "hf-sam", checkpoint=ckpt["sam"]).segment(frames[4], boxes=np.array(boxes))
    processor = SamProcessor(SamImageProcessorPil(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64}))
    model = SamModel.from_pretrained(ckpt["sam"]).eval()
    inputs = processor(images=Image.fromarray(frames[4]), input_boxes=[boxes], return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs, multimask_output=False)
    ref = processor.post_process_masks(out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"])
    ref = ref[0][:, 0].numpy()
    assert ref.shape == ours.shape
    # Resampling differs (PIL vs torch antialiased bilinear), so near-equal rather than equal.
    for a, b in zip(ours, ref):
        assert iou(a, b) > 0.9


def test_segmenter_bad_prompts(ckpt, frames):
    seg = create("segmenter", "hf-sam", checkpoint=ckpt["sam"])
    with pytest.raises(RegionLMError, match="boxes .* or points"):
        seg.segment(frames[0])
    with pytest.raises(RegionLMError, match=r"\(N, 4\)"):
        seg.segment(frames[0], boxes=np.array([1, 2, 3]))
    with pytest.raises(RegionLMError, match="2 boxes but 1 points"):
        seg.segment(frames[0], boxes=np.zeros((2, 4)), points=np.zeros((1, 2)))
    with pytest.raises(RegionLMError, match="uint8"):
        seg.segment(frames[0].astype(np.float32), boxes=np.zeros((1, 4)))


# ---------------------------------------------------------------------- tracker


VIDEO_KINDS = ["sam2_video", "sam3_tracker_video"]


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_tracker_start_keeps_the_given_masks(ckpt, frames, kind):
    # SAM 2 outputs a given mask as is on its frame (at its low resolution, 16x16 for both tiny models: cells of
    # 3x5 pixels here, so the rectangles follow that grid): a check of the resize path that holds for any weights.
    tracker = create("tracker", "hf", checkpoint=ckpt[kind])
    given = {1: rect(6, 42, 10, 50), 2: rect(3, 27, 50, 75)}
    tracker.start(frames[0], given)
    assert set(tracker.masks) == {1, 2}
    for obj_id, mask in given.items():
        assert tracker.masks[obj_id].shape == (H, W)
        assert iou(tracker.masks[obj_id], mask) > 0.9


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_tracker_ids_through_steps_add_reseed_remove(ckpt, frames, kind):
    tracker = create("tracker", "hf", checkpoint=ckpt[kind])
    tracker.start(frames[0], {3: rect(6, 42, 10, 50), 7: rect(3, 27, 50, 75)})
    for t in range(1, 5):
        out = tracker.step(frames[t])
        assert set(out) == {3, 7}
        assert all(m.shape == (H, W) and m.dtype == bool for m in out.values())
    new = rect(30, 45, 20, 60)
    tracker.add(frames[4], {11: new})  # a new object on the current frame
    assert iou(tracker.masks[11], new) > 0.9
    for t in range(5, 8):
        assert set(tracker.step(frames[t])) == {3, 7, 11}
    reseed = rect(0, 21, 0, 30)
    tracker.add(frames[7], {3: reseed})  # a known id with a new mask becomes a conditioning frame again
    assert iou(tracker.masks[3], reseed) > 0.9
    assert set(tracker.masks) == {3, 7, 11}
    tracker.remove([7])
    for t in range(8, 11):
        out = tracker.step(frames[t])
        assert set(out) == {3, 11}
    assert tracker.stored()["objects"] == 2


def test_tracker_memory_stays_bounded_on_a_long_stream(ckpt, frames):
    tracker = create("tracker", "hf", checkpoint=ckpt["sam2_video"], max_cond_frames=2)
    window = tracker.window  # max(num_maskmem, max_object_pointers_in_encoder) = 4 for the tiny model
    assert window == 4
    tracker.start(frames[0], {1: rect(8, 40, 10, 50), 2: rect(4, 28, 52, 78)})
    peak = {}
    for t in range(1, 81):  # 20 times the model's memory window
        out = tracker.step(frames[t % len(frames)])
        assert set(out) == {1, 2}
        if t % 20 == 0:  # key frames re-seed object 1: conditioning frames must not pile up either
            tracker.add(frames[t % len(frames)], {1: rect(8, 40, 10, 50)})
        for key, value in tracker.stored().items():
            peak[key] = max(peak.get(key, 0), value)
    assert peak["frames"] == 1
    assert peak["tracked_outputs"] <= 2 * (window + 1)
    assert peak["cond_outputs"] <= 2 * 2
    session = tracker.session
    assert len(session.processed_frames) == 1
    for outputs in session.output_dict_per_obj.values():
        assert min(outputs["non_cond_frame_outputs"]) >= tracker.frame_idx - window
        assert all("high_res_masks" not in o for o in outputs["non_cond_frame_outputs"].values())
    assert all(len(frames_) <= window + 1 for frames_ in session.frames_tracked_per_obj.values())


def test_tracker_empty_start_then_add(ckpt, frames):
    tracker = create("tracker", "hf", checkpoint=ckpt["sam2_video"])
    tracker.start(frames[0], {})
    assert tracker.step(frames[1]) == {}
    tracker.add(frames[1], {4: rect(8, 40, 10, 50)})
    assert set(tracker.step(frames[2])) == {4}


def test_tracker_bad_input(ckpt, frames):
    tracker = create("tracker", "hf", checkpoint=ckpt["sam2_video"])
    with pytest.raises(RegionLMError, match="before start"):
        tracker.step(frames[0])
    with pytest.raises(RegionError, match="differs from the frame"):
        tracker.start(frames[0], {1: np.ones((10, 10), bool)})
    tracker.start(frames[0], {1: rect(8, 40, 10, 50)})
    with pytest.raises(RegionError, match="differs from the first frame"):
        tracker.step(frames[1][:20])


# ---------------------------------------------------------------------- checkpoint folders


@pytest.mark.parametrize("kind,name,folder,expected", [
    ("detector", "hf-owlv2", "sam", "'owlv2'"),
    ("detector", "hf-grounding-dino", "owlv2", "'grounding-dino'"),
    ("segmenter", "hf-sam", "gdino", "'sam' or 'sam2' or 'sam2_video'"),
    ("tracker", "hf", "sam2", "'sam2_video' or 'sam3_tracker_video'"),  # image-only SAM 2 has no memory
])
def test_wrong_kind_of_folder(ckpt, kind, name, folder, expected):
    with pytest.raises(RegionLMError) as err:
        create(kind, name, checkpoint=ckpt[folder])
    message = str(err.value)
    assert str(ckpt[folder]) in message and expected in message and "\n" not in message


def test_missing_or_broken_folder(ckpt, tmp_path):
    with pytest.raises(RegionLMError, match="folder not found"):
        create("detector", "hf-owlv2", checkpoint=tmp_path / "nowhere")
    with pytest.raises(RegionLMError, match="no config.json"):
        create("segmenter", "hf-sam", checkpoint=tmp_path)
    with pytest.raises(RegionLMError, match="needs checkpoint=DIR"):
        create("tracker", "hf")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "sam"}))
    with pytest.raises(RegionLMError, match="cannot load SamModel"):  # config without weights
        create("segmenter", "hf-sam", checkpoint=tmp_path)
    # A pickled checkpoint is never loaded (unpickling runs code): weights come from safetensors only. This
    # folder would load if the .bin were read.
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_bytes((ckpt["sam"] / "config.json").read_bytes())
    torch.save(load_file(ckpt["sam"] / "model.safetensors"), pickled / "pytorch_model.bin")
    with pytest.raises(RegionLMError, match="model.safetensors"):
        create("segmenter", "hf-sam", checkpoint=pickled)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RegionLMError, match="not a JSON object"):
        create("segmenter", "hf-sam", checkpoint=tmp_path)


def test_bad_options(ckpt):
    with pytest.raises(RegionLMError, match="unknown option.*nms_threshold"):
        create("detector", "hf-owlv2", checkpoint=ckpt["owlv2"], nms_threshold=0.3)
    with pytest.raises(RegionLMError, match="device 'gpu7'"):
        create("segmenter", "hf-sam", checkpoint=ckpt["sam"], device="gpu7")
