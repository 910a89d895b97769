"""`regionlm eval --predictions FILE`: scoring other systems' outputs on hand-written and real data."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from regionlm.regions import mask_to_rle
from regionlm.world import generate_split

from shared_data import DATA

DATA = DATA


def regionlm_eval(argv):
    """`regionlm eval ARGS` through the top-level CLI."""
    from regionlm import cli

    return cli.main(["eval", *argv])


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def score(name, data, preds, out, *extra):
    assert regionlm_eval(["--benchmark", name, "--data", str(data), "--predictions", str(preds), "--out", str(out),
                          *extra]) == 0
    return json.loads((Path(out) / "results.json").read_text())


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("regionlm: error:")
    return err[0]


# ------------------------------------------------------------------------------------------- VideoRefer-Bench-Q
BENCH_Q = [  # (id, type, answer letter, prediction): the official extraction's quirks decide right / wrong
    (1, "Basic Questions", "B", "(b)", False),
    (2, "Basic Questions", "B", "B) a dog", True),
    ("q3", "Sequential Questions", "C", "The answer is C", False),
    ("q4", "Sequential Questions", "A", "", False),
    ("q5", "Reasoning Questions", "A", "  A.", False),
    ("q6", "Reasoning Questions", "D", "d", True),
    ("q7", "Future Predictions", "A", "(A) A helmet", True),
]


def bench_q_record(qid, qtype, letter):
    rle = mask_to_rle(np.eye(8, dtype=bool))
    options = ["(A) A helmet", "(B) A dog", "(C) A cat", "(D) A car"]
    return {"id": qid, "video": "DAVIS/JPEGImages/480p/aerobatics", "Question": "What is <object0><region> near?",
            "type": qtype, "options": options, "Answer": options["ABCD".index(letter)], "frame_idx": "3",
            "annotation": [{"3": {"segmentation": rle}, "5": {"segmentation": rle}}]}


def test_videorefer_q_official_extraction(tmp_path):
    data = tmp_path / "bench_q.json"
    data.write_text(json.dumps([bench_q_record(q, t, a) for q, t, a, _, _ in BENCH_Q]))
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": q, "pred": p} for q, _, _, p, _ in BENCH_Q]
                        + [{"id": "not-a-question", "pred": "A"}])  # VideoRefer's own key "pred" is read too
    res = score("videorefer-q", data, preds, tmp_path / "out")
    m = res["metrics"]
    assert m["overall"] == pytest.approx(100 * 3 / 7)
    assert m["Basic Questions"] == 50 and m["Sequential Questions"] == 0
    assert m["Reasoning Questions"] == 50 and m["Future Predictions"] == 100
    assert [r["correct"] for r in res["per_sample"]] == [c for *_, c in BENCH_Q]
    assert res["extra_prediction_ids"] == ["not-a-question"] and any("not-a-question" in n for n in res["notes"])
    assert (tmp_path / "out" / "per_type.png").is_file()
    assert not (tmp_path / "out" / "predictions.jsonl").exists()  # nothing to cache for a predictions file


def test_missing_ids_are_listed(tmp_path, capsys):
    data = tmp_path / "bench_q.json"
    data.write_text(json.dumps([bench_q_record(q, t, a) for q, t, a, _, _ in BENCH_Q]))
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": q, "prediction": p} for q, _, _, p, _ in BENCH_Q[2:]])
    assert regionlm_eval(["--benchmark", "videorefer-q", "--data", str(data), "--predictions", str(preds),
                          "--out", str(tmp_path / "out")]) == 2
    err = one_line_error(capsys)
    assert "2 of 7 sample ids have no prediction: 1, 2" in err


# ------------------------------------------------------------------------------------------- RegionWorld
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate_split(out, "test", 2, 5, progress=False, write_videos=False)
    return out


def test_world_q_perfect_predictions_follow_the_region(world, tmp_path, capsys):
    questions = json.loads((world / "region_qa.json").read_text())
    lines = [{"id": q["id"], "prediction": q["Answer"]} for q in questions]
    swaps = [{"id": q["id"] + "@lookalike", "prediction": q["lookalike"]["Answer"]} for q in questions
             if "lookalike" in q]
    assert swaps
    res = score("world-q", world, write_jsonl(tmp_path / "p.jsonl", lines + swaps), tmp_path / "a")
    assert res["metrics"]["overall"] == 100 and res["metrics"]["region_swap"] == 100
    # Answering the swapped question like the original one (ignoring the region) never follows the look-alike.
    blind = [{"id": s["id"], "prediction": next(q["Answer"] for q in questions if q["id"] + "@lookalike" == s["id"])}
             for s in swaps]
    res = score("world-q", world, write_jsonl(tmp_path / "b.jsonl", lines + blind), tmp_path / "b")
    assert res["metrics"]["region_swap"] == 0
    # The swapped answers are required too, and the error says so.
    capsys.readouterr()
    write_jsonl(tmp_path / "c.jsonl", lines)
    assert regionlm_eval(["--benchmark", "world-q", "--data", str(world), "--predictions", str(tmp_path / "c.jsonl"),
                          "--out", str(tmp_path / "c")]) == 2
    err = one_line_error(capsys)
    assert swaps[0]["id"] in err and "<id>@lookalike" in err


def test_world_sot_ground_truth_as_predictions(world, tmp_path):
    tracks = [json.loads(line) for line in (world / "sot.jsonl").read_text().splitlines()]
    lines = []
    for t in tracks:  # one box per video frame (frames before init_frame are ignored), null where absent
        lines.append({"id": t["id"], "boxes": [None if b is None else [b[0], b[1], b[2] - b[0], b[3] - b[1]]
                                               for b in t["boxes"]]})
    res = score("world-sot", world, write_jsonl(tmp_path / "p.jsonl", lines), tmp_path / "out")
    # Every visible frame is perfect; absent frames (out of the picture or hidden) always fail (LaSOT protocol).
    visible = np.mean([1 - np.mean(t["absent"][t["init_frame"]:]) for t in tracks])
    assert res["metrics"]["op50"] == res["metrics"]["precision"] == pytest.approx(100 * visible)
    assert res["metrics"]["auc"] == pytest.approx(100 * visible * 20 / 21)


# ------------------------------------------------------------------------------------------- LaSOT-style folders
def write_sequence(folder: Path, boxes, absent=None, frames=False):
    folder.mkdir(parents=True)
    (folder / "groundtruth.txt").write_text("".join(",".join(str(v) for v in b) + "\n" for b in boxes))
    if absent is not None:  # LaSOT splits absence over two files
        (folder / "full_occlusion.txt").write_text(",".join(str(int(a)) for a in absent))
        (folder / "out_of_view.txt").write_text(",".join("0" for _ in absent))
    if frames:
        from PIL import Image

        (folder / "img").mkdir()
        for i in range(len(boxes)):
            Image.new("RGB", (64, 48)).save(folder / "img" / f"{i + 1:08d}.jpg")


@pytest.fixture()
def lasot(tmp_path):
    rng = np.random.default_rng(0)
    seqs = {"airplane-1": rng.integers(1, 40, (6, 4)).tolist(), "bird-2": rng.integers(1, 40, (5, 4)).tolist()}
    write_sequence(tmp_path / "lasot" / "airplane" / "airplane-1", seqs["airplane-1"], frames=True)
    write_sequence(tmp_path / "lasot" / "bird" / "bird-2", seqs["bird-2"], absent=[0, 0, 1, 0, 0])
    return tmp_path / "lasot", seqs


def test_lasot_perfect_predictions(lasot, tmp_path):
    data, seqs = lasot
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": k, "boxes": v} for k, v in seqs.items()])
    m = score("lasot", data, preds, tmp_path / "out")["metrics"]
    # airplane-1: 20/21 (IoU > 1.0 never holds); bird-2: one absent frame of 5 fails every threshold.
    assert m["auc"] == pytest.approx(100 * (20 / 21 + 0.8 * 20 / 21) / 2, abs=1e-6)
    assert m["precision"] == pytest.approx(90.0) and m["op50"] == pytest.approx(90.0)
    shutil.rmtree(data / "bird")
    m = score("lasot", data, write_jsonl(tmp_path / "q.jsonl", [{"id": "airplane-1", "boxes": seqs["airplane-1"]}]),
              tmp_path / "out2")["metrics"]
    assert m["auc"] == pytest.approx(100 * 20 / 21, abs=1e-6)  # 95.24


def test_lasot_missing_sequence_and_wrong_length(lasot, tmp_path, capsys):
    data, seqs = lasot
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "airplane-1", "boxes": seqs["airplane-1"]}])
    assert regionlm_eval(["--benchmark", "lasot", "--data", str(data), "--predictions", str(preds),
                          "--out", str(tmp_path / "o")]) == 2
    assert "bird-2" in one_line_error(capsys)
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": k, "boxes": v[:-1]} for k, v in seqs.items()])
    assert regionlm_eval(["--benchmark", "lasot", "--data", str(data), "--predictions", str(preds),
                          "--out", str(tmp_path / "o")]) == 2
    assert "predicted boxes but the sequence has" in one_line_error(capsys)


def test_lasot_first_frame_baseline_reads_frames_when_there(lasot, tmp_path):
    data, _ = lasot
    shutil.rmtree(data / "bird")
    assert regionlm_eval(["--benchmark", "lasot", "--data", str(data), "--baseline", "first-frame",
                          "--out", str(tmp_path / "o"), "--json"]) == 0
    assert 0 < json.loads((tmp_path / "o" / "results.json").read_text())["metrics"]["auc"] <= 100 * 20 / 21


# ------------------------------------------------------------------------------------------- real data
@pytest.mark.skipif(not (DATA / "davis-car-shadow").is_dir(), reason="shared data not available")
def test_davis_ground_truth_gives_jf_100(tmp_path):
    from regionlm.data import load

    data = DATA / "davis-car-shadow"
    seq = load(data, "davis").records[0]
    lines = [{"id": seq.name, "masks": {str(k): [mask_to_rle(m) for m in seq.masks[k]] for k in seq.object_ids}}]
    m = score("davis", data, write_jsonl(tmp_path / "p.jsonl", lines), tmp_path / "out")["metrics"]
    assert m["jf_mean"] == m["j_mean"] == m["f_mean"] == 100.0 and m["j_decay"] == 0
    # The same from a DAVIS results folder of PNGs.
    (tmp_path / "results").mkdir()
    shutil.copytree(data / "masks", tmp_path / "results" / seq.name)
    assert score("davis", data, tmp_path / "results", tmp_path / "out2")["metrics"]["jf_mean"] == 100.0


@pytest.mark.skipif(not (DATA / "vot15-bag").is_dir(), reason="shared data not available")
def test_vot_ground_truth_as_predictions(tmp_path):
    from regionlm.data import load

    data = DATA / "vot15-bag"
    seq = load(data, "vot").records[0]
    lines = [{"id": seq.name, "boxes": seq.boxes_xywh.tolist()}]
    m = score("vot", data, write_jsonl(tmp_path / "p.jsonl", lines), tmp_path / "out")["metrics"]
    assert m["precision"] == m["norm_precision"] == m["op50"] == m["op75"] == 100.0
    # Fractional boxes: IoU is clamped at 1, so a perfect tracker scores exactly 20/21 (no 1 + 1e-15 passes t = 1).
    assert m["auc"] == pytest.approx(100 * 20 / 21, abs=1e-9)


# ------------------------------------------------------------------------------------------- descriptions
def test_elysium_reg_predictions(tmp_path):
    recs = [{"id": f"e{i}", "vid": "v", "frames": ["frames/v/000000.jpg", "frames/v/000001.jpg"],
             "box": [[0.1, 0.1, 0.5, 0.5], [0.2, 0.1, 0.6, 0.5]], "frame_size": [64, 48], "object_class": cls,
             "object_description": desc}
            for i, (cls, desc) in enumerate([("dog", "a brown dog running on the grass"),
                                             ("car", "a red car turning left at the corner")])]
    data = write_jsonl(tmp_path / "elysium.jsonl", recs)
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": r["id"], "prediction": r["object_description"]} for r in recs])
    m = score("elysium-reg", data, preds, tmp_path / "out", "--no-java")["metrics"]
    assert m["bleu4"] == pytest.approx(100) and m["rouge_l"] == pytest.approx(100) and m["meteor"] is None
    assert regionlm_eval(["--benchmark", "elysium-reg", "--data", str(data), "--baseline", "random", "--no-java",
                          "--out", str(tmp_path / "r")]) == 0


def test_videorefer_d_with_java_caption_metrics(tmp_path):
    """The one evaluation here that starts the JVM (PTB tokenizer + METEOR) when Java is installed."""
    rle = mask_to_rle(np.eye(8, dtype=bool))
    captions = ["A man in a red shirt walks to the left and waves.", "A white dog jumps over a small fence.",
                "The car drives away down the road."]
    recs = [{"id": i, "video": f"clip_{i}.mp4", "caption": c, "frame_idx": "0", "annotation": [{"0": {
        "segmentation": rle}}]} for i, c in enumerate(captions)]
    data = tmp_path / "bench_d.json"
    data.write_text(json.dumps(recs))
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": 0, "prediction": "A man walks left and waves."},
                                               {"id": 1, "prediction": "A dog jumps over a fence."},
                                               {"id": 2, "prediction": "A car drives down the road."}])
    res = score("videorefer-d", data, preds, tmp_path / "out")
    m = res["metrics"]
    assert 0 < m["bleu1"] < 100 and 0 < m["cider"]
    assert m["judge_overall"] is None and any("no judge given" in n for n in res["notes"])
    if shutil.which("java"):
        assert res["details"]["tokenizer"] == "ptb-java" and 0 < m["meteor"] < 100


class CountingJudge:
    """A stand-in for a slow or paid judge: replies in the official format and counts its calls."""

    name = "counting-judge"

    def __init__(self, reply="1. Subject Correspondence: 4\nExplanation: ok\n2. Appearance Description: 3\n"
                             "Explanation: ok\n3. Temporal Description: 2\nExplanation: ok\n"
                             "4. Hallucination Detection: 5\nExplanation: ok"):
        self.reply, self.calls = reply, 0

    def score(self, reference, prediction, meta=None):
        self.calls += 1
        return self.reply if prediction else "I cannot judge this."


def test_videorefer_d_judge_scores_and_reply_cache(tmp_path):
    from regionlm.eval.baselines import PredictionsFile
    from regionlm.eval.benchmarks import BenchmarkOptions, get_benchmark
    from regionlm.eval.runner import evaluate

    rle = mask_to_rle(np.eye(8, dtype=bool))
    recs = [{"id": i, "video": f"clip_{i}.mp4", "caption": f"A dog number {i} runs.", "frame_idx": "0",
             "annotation": [{"0": {"segmentation": rle}}]} for i in range(3)]
    (tmp_path / "d.json").write_text(json.dumps(recs))
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": 0, "prediction": "A dog runs."},
                                               {"id": 1, "prediction": "A cat sits."}, {"id": 2, "prediction": ""}])
    for expected_calls in (3, 0):  # the second run reads every reply from OUT/judge_replies.jsonl
        judge = CountingJudge()
        opts = BenchmarkOptions(data=tmp_path / "d.json", use_java=False, judge=judge,
                                judge_cache=tmp_path / "out" / "judge_replies.jsonl")
        bench = get_benchmark("videorefer-d")(opts)
        res = evaluate(bench, PredictionsFile(preds, bench), tmp_path / "out", progress=False)
        assert judge.calls == expected_calls
        m = res["metrics"]
        assert (m["Subject Correspondence"], m["Temporal Description"], m["judge_overall"]) == (4, 2, 3.5)
        assert res["details"]["judge"]["n_unparseable"] == 1 and res["details"]["judge"]["unparseable_ids"] == ["2"]


def test_judge_options_are_checked(tmp_path, capsys):
    args = ["--predictions", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "o")]
    assert regionlm_eval(["--benchmark", "videorefer-d", "--data", str(tmp_path), "--judge-url", "http://x"]
                         + args) == 2
    assert "--judge-model" in one_line_error(capsys)
    assert regionlm_eval(["--benchmark", "world-d", "--data", str(tmp_path), "--judge-hf", "m"] + args) == 2
    assert "deterministic judge" in one_line_error(capsys)


def test_world_d_reference_descriptions_score_five(world, tmp_path):
    captions = json.loads((world / "region_caption.json").read_text())
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": c["id"], "prediction": c["caption"]} for c in captions])
    m = score("world-d", world, preds, tmp_path / "out", "--no-java")["metrics"]
    assert m["judge_overall"] == 5 and m["Hallucination Detection"] == 5
    assert m["bleu4"] == pytest.approx(100) and m["rouge_l"] == pytest.approx(100)
    assert m["attributes"] == 100 and m["attr_motion"] == 100  # the reference names every attribute right


def test_world_d_attributes_count_each_wrong_or_missing_attribute():
    from regionlm.eval.metrics.world_judge import attribute_checks

    obj = {"colour": "red", "shape": "star", "size": "small", "static": False}
    ref = "A small red star moves left. It bounces off the top wall."
    assert attribute_checks(ref, ref, obj) == {"colour": True, "shape": True, "size": True, "motion": True}
    got = attribute_checks(ref, "A large red circle moves right.", obj)
    assert got == {"colour": True, "shape": False, "size": False, "motion": False}
    assert attribute_checks(ref, "A red star.", obj)["motion"] is False  # motion not said counts as wrong
    still = dict(obj, static=True)
    assert attribute_checks("A small red star stays still.", "A small red star stays still.", still)["motion"]
