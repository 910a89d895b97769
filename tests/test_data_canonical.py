"""Canonical (VideoRefer-700K style) samples, VideoRefer-Bench-Q/D, the atomic writers and the error policy."""

import copy
import json

import numpy as np
import pytest

from regionlm.data import (FORMATS, LoadResult, atomic_write_json, atomic_write_jsonl, atomic_write_text, load,
                           load_bench_d, load_bench_q, load_canonical, read_records, validate_canonical,
                           write_canonical)
from regionlm.errors import DataFormatError
from regionlm.regions import mask_to_rle


def _rle(h=8, w=10):
    mask = np.zeros((h, w), dtype=bool)
    mask[2:5, 3:7] = True
    return mask_to_rle(mask)


def make_sample(sid="s1"):
    return {
        "id": sid, "video": "videos/v.mp4", "height": 8, "width": 10,
        "conversations": [{"from": "human", "value": "<video>\nWhat is <region> doing?"},
                          {"from": "gpt", "value": "It sits still."}],
        "annotation": [{"0": {"segmentation": _rle()}, "3": {"segmentation": _rle()}}],
        "boxes": [{"0": [3, 2, 7, 5]}],
        "task": "region_qa",
    }


def _missing_seg(s):
    s["annotation"][0]["3"] = {"bbox": [1, 2, 3, 4]}


def _counts_null(s):
    s["annotation"][0]["3"]["segmentation"]["counts"] = None


def _region_mismatch(s):
    s["conversations"][0]["value"] = "<video>\nHow do <region> and <region> interact?"


def _box_outside(s):
    s["boxes"][0]["0"] = [3, 2, 12, 5]  # x2 = 12 > width 10


def _polygon_without_size(s):
    del s["height"], s["width"]
    s["annotation"][0]["0"]["segmentation"] = [[1, 1, 6, 1, 6, 5, 1, 5]]


def _negative_frame(s):
    s["annotation"][0]["-1"] = s["annotation"][0].pop("3")


def _rle_size_mismatch(s):
    s["annotation"][0]["3"]["segmentation"] = _rle(9, 10)


def _no_id(s):
    del s["id"]


# (defect, the field it is reported under, a phrase of the reason)
DEFECTS = [
    (_missing_seg, 'annotation[0]["3"].segmentation', "missing segmentation"),
    (_counts_null, 'annotation[0]["3"].segmentation.counts', "null"),
    (_region_mismatch, "conversations", "2 <region> placeholder(s) in the text but 1 region(s)"),
    (_box_outside, 'boxes[0]["0"]', "outside the 10x8 frame"),
    (_polygon_without_size, 'annotation[0]["0"].segmentation', "needs the record's height and width"),
    (_negative_frame, 'annotation[0]["-1"]', "not a non-negative integer"),
    (_rle_size_mismatch, 'annotation[0]["3"].segmentation.size', "differs from the record's"),
    (_no_id, "id", "missing"),
]


@pytest.mark.parametrize("defect,field,reason", DEFECTS, ids=[d[0].__name__.strip("_") for d in DEFECTS])
def test_each_defect_raises_naming_file_record_field(tmp_path, defect, field, reason):
    bad = make_sample("bad-1")
    defect(bad)
    path = tmp_path / "train.json"
    path.write_text(json.dumps([make_sample("ok-1"), bad]))
    with pytest.raises(DataFormatError) as info:
        load_canonical(path)
    err = info.value
    assert err.file == str(path) and err.field == field and reason in err.reason
    assert err.record == ("bad-1" if defect is not _no_id else "#1")
    msg = str(err)
    assert str(path) in msg and field in msg and reason in msg and repr(err.record) in msg


def test_frame_out_of_range_when_frame_count_known(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([make_sample()]))
    assert len(load_canonical(path, num_frames=4)) == 1
    with pytest.raises(DataFormatError, match=r"frame 3 is out of range: the video has 3 frames") as info:
        load_canonical(path, num_frames=3)
    assert info.value.field == 'annotation[0]["3"]' and info.value.record == "s1"


def test_skip_mode_reports_every_bad_record_and_keeps_the_good(tmp_path):
    records, bad_ids = [make_sample("good-0")], []
    for k, (defect, _, _) in enumerate(DEFECTS):
        s = make_sample(f"bad-{k}")
        defect(s)
        records.append(s)
        bad_ids.append(f"bad-{k}" if defect is not _no_id else f"#{len(records) - 1}")
    records.append(make_sample("good-1"))
    records.append(make_sample("good-1"))  # duplicate id
    path = tmp_path / "train.json"
    path.write_text(json.dumps(records))

    result = load_canonical(path, errors="skip")
    assert isinstance(result, LoadResult)
    assert [r["id"] for r in result.records] == ["good-0", "good-1"]
    assert [s.record for s in result.skipped] == bad_ids + ["good-1"]
    assert [s.field for s in result.skipped] == [d[1] for d in DEFECTS] + ["id"]
    assert all(s.file == str(path) and s.reason for s in result.skipped)
    assert "duplicate id" in result.skipped[-1].reason
    summary = result.summary()
    assert summary.startswith("2 records ok, 9 skipped")
    assert all(repr(r) in summary for r in bad_ids)
    assert result.report[0] == {"file": str(path), "record": "bad-0", "field": DEFECTS[0][1],
                                "reason": "missing segmentation"}


def test_records_without_segmentation_at_all_and_box_only_regions():
    s = make_sample()
    s["annotation"] = [{}]  # a box-only region: allowed when boxes cover it
    assert validate_canonical([s]).records == [s]
    s["boxes"] = [{}]
    with pytest.raises(DataFormatError, match="neither a mask nor a box") as info:
        validate_canonical([s])
    assert info.value.field == "annotation[0]"


def test_integer_ids_including_zero():
    samples = [make_sample(0), make_sample(1)]
    assert validate_canonical(samples).records == samples
    _counts_null(samples[0])
    with pytest.raises(DataFormatError, match="record 0, field") as info:
        validate_canonical(samples, file="mem.json")
    assert info.value.record == 0 and info.value.file == "mem.json"


def test_uncompressed_rle_and_polygons_are_accepted():
    s = make_sample()
    s["annotation"][0]["0"]["segmentation"] = {"size": [8, 10], "counts": [20, 60]}
    s["annotation"][0]["3"]["segmentation"] = [[1, 1, 6, 1, 6, 5, 1, 5]]
    assert len(validate_canonical([s])) == 1
    s["annotation"][0]["0"]["segmentation"]["counts"] = [20, 50]
    with pytest.raises(DataFormatError, match="sum to 70, not 8\\*10=80"):
        validate_canonical([s])


def test_round_trip_and_byte_stable_output(tmp_path):
    samples = [make_sample("a"), make_sample("b")]
    samples[1]["conversations"][1]["value"] = "Ça bouge — vers la gauche."
    path = tmp_path / "out" / "train.json"
    write_canonical(path, samples)
    assert load_canonical(path).records == samples
    first = path.read_bytes()
    write_canonical(path, copy.deepcopy(samples))
    assert path.read_bytes() == first
    text = first.decode("utf-8")
    assert text == json.dumps(samples, ensure_ascii=False, separators=(",", ":")) + "\n"
    assert "Ça bouge — vers" in text  # ensure_ascii=False
    assert [p.name for p in path.parent.iterdir()] == ["train.json"]  # no temp file left


def test_write_canonical_refuses_bad_samples(tmp_path):
    bad = make_sample()
    _counts_null(bad)
    with pytest.raises(DataFormatError):
        write_canonical(tmp_path / "x.json", [bad])
    assert not (tmp_path / "x.json").exists()


def test_atomic_writers(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [np.int64(2), np.float32(0.5)], "é": np.arange(2)})
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == '{"b":1,"a":[2,0.5],"é":[0,1]}\n'
    atomic_write_jsonl(tmp_path / "a.jsonl", [{"x": 1}, {"x": 2}])
    assert (tmp_path / "a.jsonl").read_text() == '{"x":1}\n{"x":2}\n'
    assert read_records(tmp_path / "a.jsonl") == [{"x": 1}, {"x": 2}]
    atomic_write_text(tmp_path / "t.txt", "hello\n")
    assert (tmp_path / "t.txt").read_text() == "hello\n"
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "nan.json", {"x": float("nan")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.jsonl", "t.txt"]


def test_unusable_files_raise_even_in_skip_mode(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        load_canonical(tmp_path / "missing.json", errors="skip")
    (tmp_path / "broken.json").write_text('[{"id": 1,')
    with pytest.raises(DataFormatError, match=r"invalid JSON.*line 1"):
        load_canonical(tmp_path / "broken.json", errors="skip")
    (tmp_path / "num.json").write_text("3")
    with pytest.raises(DataFormatError, match="expected a JSON list"):
        load_canonical(tmp_path / "num.json")


def test_jsonl_bad_line_is_a_skippable_record(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(make_sample("a")) + "\n{not json\n" + json.dumps(make_sample("c")) + "\n")
    result = load_canonical(path, errors="skip")
    assert [r["id"] for r in result] == ["a", "c"]
    assert result.skipped[0].record == "line 2" and "invalid JSON" in result.skipped[0].reason


# ----------------------------------------------------------------- VideoRefer-Bench-Q / -D

def make_question(qid=1):
    rle = _rle()
    return {"id": qid, "video": "DAVIS/JPEGImages/480p/aerobatics",
            "Question": "What is <object3><region> not wearing?", "type": "Basic Questions",
            "options": ["(A) A helmet", "(B) Gloves", "(C) Boots", "(D) A hat"], "Answer": "(A) A helmet",
            "frame_idx": "57", "annotation": [{"0": {"segmentation": rle}, "57": {"segmentation": rle}}]}


@pytest.mark.parametrize("change,field,reason", [
    (lambda q: q.update(type="Trivia"), "type", "unknown question type"),
    (lambda q: q.update(Answer="(E) A scarf"), "Answer", "letter E is not among the options A, B, C, D"),
    (lambda q: q.update(Question="Is <object1><region> near <object2><region>?"), "Question",
     "2 <region> placeholder(s)"),
    (lambda q: q["annotation"][0].pop("57"), "frame_idx", "frame 57 has no mask for region 0"),
    (lambda q: q["options"].__setitem__(1, "B) Gloves"), "options[1]", "starting with (B)"),
    (lambda q: q["annotation"][0]["0"]["segmentation"].pop("counts"), 'annotation[0]["0"].segmentation.counts',
     "missing"),
])
def test_bench_q_defects(tmp_path, change, field, reason):
    bad = make_question(7)
    change(bad)
    path = tmp_path / "Bench-Q.json"
    path.write_text(json.dumps([make_question(1), bad]))
    with pytest.raises(DataFormatError) as info:
        load_bench_q(path)
    assert (info.value.record, info.value.field) == (7, field) and reason in info.value.reason
    result = load(path, "videorefer-q", errors="skip")
    assert [q["id"] for q in result] == [1] and [s.record for s in result.skipped] == [7]


def test_bench_d(tmp_path):
    item = {"id": "d1", "video": "abc_0_10.mp4", "caption": "A dog runs.", "frame_idx": 3,
            "annotation": [{"3": {"segmentation": _rle()}}]}
    no_caption = {**item, "id": "d2", "caption": ""}
    path = tmp_path / "Bench-D.json"
    path.write_text(json.dumps([item, no_caption]))
    result = load_bench_d(path, errors="skip")
    assert result.records == [item]
    skip = result.skipped[0]
    assert (skip.record, skip.field, skip.reason) == ("d2", "caption", "is empty")
    assert FORMATS["videorefer-d"] is load_bench_d and FORMATS["videorefer-700k"] is load_canonical
