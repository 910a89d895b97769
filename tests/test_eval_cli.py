"""`regionlm eval` end to end on a tiny generated RegionWorld split, and its one-line argument errors."""

import json

import pytest

from regionlm.eval.benchmarks import BENCHMARKS, TASKS
from regionlm.world import generate_split


def regionlm_eval(argv):
    """`regionlm eval ARGS` through the top-level CLI."""
    from regionlm import cli

    return cli.main(["eval", *argv])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate_split(out, "test", 3, 0, progress=False, write_videos=False)
    return out


def test_registry_has_every_benchmark():
    assert set(BENCHMARKS) == {"world-q", "world-d", "world-sot", "world-rsot", "world-reg", "world-vqa",
                               "videorefer-q", "videorefer-d", "lasot", "elysium-reg", "davis", "vot"}
    for name, cls in BENCHMARKS.items():
        assert cls.name == name and cls.task in TASKS and cls.summary and cls.data_help and cls.headline


def test_world_q_random_baseline(world, tmp_path, capsys):
    out = tmp_path / "q"
    assert regionlm_eval(["--benchmark", "world-q", "--data", str(world), "--baseline", "random", "--out", str(out),
                          "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)  # only one JSON object on stdout
    assert set(printed) == {"benchmark", "metrics", "num_samples"} and printed["benchmark"] == "world-q"
    m = printed["metrics"]
    assert 0 < m["overall"] < 100  # near chance (4 options): neither 0 nor perfect
    assert 0 <= m["region_swap"] <= 100
    assert {"Basic Questions", "Sequential Questions", "Future Predictions"} <= set(m)
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"] == m and results["num_samples"] == printed["num_samples"] == 30
    assert results["config"]["system"] == {"system": "baseline", "baseline": "random", "seed": 0}
    assert results["versions"]["regionlm"] and len(results["per_sample"]) == 30
    swapped = [r for r in results["per_sample"] if "swap_follows" in r]
    assert len(swapped) == results["details"]["region_swap"]["asked"] > 0
    assert (out / "report.md").read_text().startswith("# regionlm eval: world-q")
    assert (out / "per_type.png").stat().st_size > 1000
    cache = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(cache) == 30 + len(swapped) and any(r["id"].endswith("@lookalike") for r in cache)


def test_world_sot_first_frame_baseline(world, tmp_path, capsys):
    out = tmp_path / "sot"
    assert regionlm_eval(["--benchmark", "world-sot", "--data", str(world), "--baseline", "first-frame",
                          "--out", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[-5].split()[0] == "auc"  # the table comes last
    results = json.loads((out / "results.json").read_text())
    assert 0 < results["metrics"]["auc"] < 100
    assert set(results["metrics"]) == {"auc", "precision", "norm_precision", "op50", "op75"}
    assert len(results["curves"]["success_curve"]) == 21
    assert (out / "success_plot.png").is_file() and (out / "precision_plot.png").is_file()


def test_text_benchmarks_without_java(world, tmp_path, capsys):
    for name, keys in (("world-vqa", {"overall", "Counting"}), ("world-reg", {"bleu4", "cider", "rouge_l"}),
                       ("world-d", {"judge_overall", "Subject Correspondence", "bleu4", "cider"})):
        assert regionlm_eval(["--benchmark", name, "--data", str(world), "--baseline", "random", "--no-java",
                              "--out", str(tmp_path / name), "--json"]) == 0
        metrics = json.loads(capsys.readouterr().out)["metrics"]
        assert keys <= set(metrics), name
    assert metrics["meteor"] is None  # no Java: unavailable, not 0
    assert 0 <= metrics["judge_overall"] < 5


def test_limit_and_seed(world, tmp_path, capsys):
    args = ["--benchmark", "world-q", "--data", str(world), "--baseline", "random", "--limit", "4", "--json"]
    assert regionlm_eval(args + ["--out", str(tmp_path / "a"), "--seed", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["num_samples"] == 4


@pytest.mark.parametrize("args, words", [
    ([], ["--benchmark NAME", "world-q"]),
    (["--benchmark", "nope", "--out", "o"], ["unknown benchmark 'nope'", "world-sot"]),
    (["--benchmark", "davis", "--data", "{world}", "--out", "{out}"], ["scores masks", "--tracker NAME"]),
    (["--benchmark", "world-q", "--data", "{world}", "--baseline", "random"], ["--out DIR"]),
    (["--benchmark", "world-q", "--data", "{world}", "--baseline", "first-frame", "--out", "{out}"],
     ["does not apply to world-q", "--baseline random"]),
    (["--benchmark", "world-rsot", "--data", "{world}", "--baseline", "first-frame", "--out", "{out}"],
     ["needs the first box"]),
    (["--benchmark", "world-q", "--data", "{world}", "--baseline", "random", "--predictions", "p.jsonl",
      "--out", "{out}"], ["only one of"]),
    (["--benchmark", "world-q", "--data", "{world}", "--model", "ckpt", "--out", "{out}"], ["--model ckpt", "no such folder"]),
    (["--benchmark", "world-d", "--data", "{world}", "--model", "ckpt", "--region-propagation", "sam2",
      "--out", "{out}"], ["--region-propagation must be one of off, classical, got 'sam2'"]),
    (["--benchmark", "world-q", "--data", "{world}", "--model", "ckpt", "--region-mode", "all",
      "--out", "{out}"], ["--region-mode must be one of single, multi, got 'all'"]),
    (["--benchmark", "world-d", "--data", "{world}", "--model", "ckpt", "--caption-loop-guard", "maybe",
      "--out", "{out}"], ["--caption-loop-guard must be on or off, got 'maybe'"]),
    (["--benchmark", "world-sot", "--data", "{world}", "--tracker", "nope", "--out", "{out}"],
     ["nope", "classical"]),
    (["--benchmark", "world-q", "--data", "{world}", "--baseline", "random", "--limit", "0", "--out", "{out}"],
     ["--limit must be at least 1"]),
    (["--benchmark", "world-q", "--data", "{world}", "--baseline", "random", "--limit", "x", "--out", "{out}"],
     ["--limit must be an integer"]),
    (["--benchmark", "world-q", "--data", "{out}/nothing", "--baseline", "random", "--out", "{out}"],
     ["no such file or folder"]),
    (["--benchmark", "world-q", "--data", "{world}/region_qa.json", "--baseline", "random", "--out", "{out}"],
     ["not a folder"]),
    (["--benchmark", "world-q", "--data", "{world}", "--predictions", "{out}/none.jsonl", "--out", "{out}"],
     ["no such file"]),
])
def test_bad_arguments_exit_2_with_one_line(world, tmp_path, capsys, args, words):
    args = [a.format(world=world, out=tmp_path) for a in args]
    assert regionlm_eval(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("regionlm: error:"), captured.err
    assert all(w in err[0] for w in words), err[0]
    assert captured.out == ""


def test_list(capsys):
    assert regionlm_eval(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in BENCHMARKS)
