"""RegionVideoDataset and collate_regions on tiny videos written in the test."""

import numpy as np
import pytest
import torch
from PIL import Image

from regionlm.data import RegionVideoDataset, collate_regions, write_canonical
from regionlm.errors import DataFormatError, VideoError
from regionlm.regions import box_to_mask, mask_to_rle, polygons_to_mask

H, W, N = 16, 20, 12


@pytest.fixture()
def frame_folder(tmp_path):
    """A 12-frame video as PNGs (lossless): every pixel of frame t has the value 10 * t."""
    folder = tmp_path / "videos" / "clip"
    folder.mkdir(parents=True)
    for t in range(N):
        Image.fromarray(np.full((H, W, 3), 10 * t, dtype=np.uint8)).save(folder / f"{t:04d}.png")
    return folder


def region_mask(t):
    m = np.zeros((H, W), dtype=bool)
    m[2:6, t:t + 5] = True
    return m


def sample_one(video="videos/clip"):
    return {"id": "one", "video": video, "height": H, "width": W, "task": "region_qa",
            "conversations": [{"from": "human", "value": "<video>\nWhat is <region> doing?"},
                              {"from": "gpt", "value": "Moving right."}],
            "annotation": [{"2": {"segmentation": mask_to_rle(region_mask(2))},
                            "9": {"segmentation": mask_to_rle(region_mask(9))}}]}


POLY = [[1, 1, 8, 1, 8, 6, 1, 6]]


def sample_two():
    return {"id": "two", "video": "videos/clip", "height": H, "width": W,
            "conversations": [{"from": "human", "value": "<video>\nDoes <region> touch <region>?"},
                              {"from": "gpt", "value": "No."}],
            "annotation": [{"5": {"segmentation": POLY}}, {}],
            "boxes": [{}, {"11": [4, 8, 12, 15]}]}


def test_items_carry_sampled_frames_and_masks(tmp_path, frame_folder):
    path = tmp_path / "train.json"
    write_canonical(path, [sample_one(), sample_two()])
    ds = RegionVideoDataset(path, num_frames=4)
    assert len(ds) == 2

    a = ds[0]
    assert a["frames"].shape == (4, H, W, 3) and a["frames"].dtype == torch.uint8
    idx = a["frame_indices"].tolist()
    assert len(idx) == 4 and {2, 9} <= set(idx) and idx == sorted(idx)
    # Each sampled frame is the right one: frame t is filled with 10 * t.
    assert [int(f[0, 0, 0]) for f in a["frames"]] == [10 * t for t in idx]
    assert a["masks"].shape == (1, 4, H, W) and a["masks"].dtype == torch.bool
    assert a["given"].tolist() == [[t in (2, 9) for t in idx]]
    for k, t in enumerate(idx):
        expected = region_mask(t) if t in (2, 9) else np.zeros((H, W), dtype=bool)
        assert np.array_equal(a["masks"][0, k].numpy(), expected)
    assert a["id"] == "one" and a["task"] == "region_qa" and a["conversations"][1]["value"] == "Moving right."

    b = ds[1]
    idx = b["frame_indices"].tolist()
    assert {5, 11} <= set(idx)
    k5, k11 = idx.index(5), idx.index(11)
    assert np.array_equal(b["masks"][0, k5].numpy(), polygons_to_mask(POLY, H, W))
    assert np.array_equal(b["masks"][1, k11].numpy(), box_to_mask([4, 8, 12, 15], H, W))  # box-only region
    assert b["given"].sum().item() == 2 and b["task"] is None

    batch = collate_regions([a, b])
    assert batch["frames"].shape == (2, 4, H, W, 3) and batch["frame_indices"].shape == (2, 4)
    assert batch["masks"].shape == (2, 2, 4, H, W)
    assert batch["region_valid"].tolist() == [[True, False], [True, True]]
    assert not batch["masks"][0, 1].any() and not batch["given"][0, 1].any()
    assert batch["id"] == ["one", "two"] and batch["task"] == ["region_qa", None]
    assert torch.equal(batch["masks"][1], b["masks"])


def test_given_sampling_and_uneven_batches(tmp_path, frame_folder):
    ds = RegionVideoDataset([sample_one(), sample_two()], video_root=tmp_path, sampling="given")
    a, b = ds[0], ds[1]
    assert a["frame_indices"].tolist() == [2, 9] and b["frame_indices"].tolist() == [5, 11]
    assert a["given"].all() and b["given"].tolist() == [[True, False], [False, True]]

    many = sample_one()
    many["id"] = "many"
    many["annotation"][0].update({str(t): {"segmentation": mask_to_rle(region_mask(t))} for t in (0, 4, 6, 11)})
    ds = RegionVideoDataset([sample_one(), many], video_root=tmp_path, num_frames=4)
    assert len(ds[1]["frame_indices"]) == 6  # more annotated frames than num_frames: all are kept
    with pytest.raises(VideoError, match=r"cannot batch.*'one': 4 frames of 20x16, 'many': 6 frames"):
        collate_regions([ds[0], ds[1]])


def test_fps_sampling_on_an_mp4(tmp_path):
    from regionlm.video import write_video

    frames = np.zeros((24, H, W, 3), dtype=np.uint8)
    write_video(tmp_path / "clip.mp4", frames, fps=8)
    s = sample_one(video="clip.mp4")
    ds = RegionVideoDataset([s], video_root=tmp_path, sampling="fps", fps=2)
    item = ds[0]
    idx = item["frame_indices"].tolist()
    assert len(idx) == 6 and {2, 9} <= set(idx)  # 24 frames at 8 fps, 2 per second, annotated kept
    assert item["frames"].shape == (6, H, W, 3)


def test_errors_found_when_reading_the_video(tmp_path, frame_folder):
    late = sample_one()
    late["annotation"][0]["20"] = late["annotation"][0].pop("9")
    wrong_size = {**sample_one(), "id": "big", "height": 32, "width": 40,
                  "annotation": [{"0": {"segmentation": mask_to_rle(np.zeros((32, 40), dtype=bool))}}]}
    ds = RegionVideoDataset([late, wrong_size], video_root=tmp_path)
    with pytest.raises(DataFormatError, match="frame 20 is out of range: video .* has 12 frames") as info:
        ds[0]
    assert (info.value.record, info.value.field) == ("one", 'annotation[0]["20"]')
    with pytest.raises(DataFormatError, match="the record says 40x32 .* is 20x16") as info:
        ds[1]
    assert info.value.field == "height"


def test_skip_mode_drops_bad_samples_with_a_report(tmp_path, frame_folder):
    bad = sample_two()
    bad["id"] = "bad"
    bad["annotation"][0]["5"]["segmentation"] = {"size": [H, W], "counts": None}
    with pytest.raises(DataFormatError, match="counts is null"):
        RegionVideoDataset([sample_one(), bad], video_root=tmp_path)
    ds = RegionVideoDataset([sample_one(), bad], video_root=tmp_path, errors="skip")
    assert len(ds) == 1 and [s.record for s in ds.skipped] == ["bad"]
