"""The per-sample cache: a rerun asks nothing again, an interrupted run resumes, numbers do not change."""

import json
from pathlib import Path

import pytest

from regionlm.errors import RegionLMError
from regionlm.eval.baselines import FirstFrameBaseline, RandomBaseline
from regionlm.eval.benchmarks import BenchmarkOptions, Sample, System, get_benchmark
from regionlm.eval.runner import CACHE_NAME, evaluate
from regionlm.world import generate_split


class Counting:
    """A System that answers like the random baseline, counts its calls and can be interrupted."""

    name = "counting"
    cacheable = True

    def __init__(self, bench, stop_after=None):
        self.inner = RandomBaseline(bench, seed=3)
        self.config = {"system": "test", "seed": 3}
        self.calls, self.stop_after = 0, stop_after

    def answer(self, sample: Sample) -> str:
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        return self.inner.answer(sample)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    data = tmp_path_factory.mktemp("world")
    generate_split(data, "test", 2, 1, progress=False, write_videos=False)
    return get_benchmark("world-q")(BenchmarkOptions(data=data))


def test_systems_follow_the_protocol(bench):
    assert isinstance(Counting(bench), System) and isinstance(RandomBaseline(bench), System)
    assert isinstance(FirstFrameBaseline(bench), System)


def test_rerun_asks_nothing_and_gives_the_same_numbers(bench, tmp_path):
    first = Counting(bench)
    res1 = evaluate(bench, first, tmp_path, progress=False)
    n = len(bench.samples(bench.load()))
    assert first.calls == n > 0
    (tmp_path / "results.json").unlink()
    again = Counting(bench)
    res2 = evaluate(bench, again, tmp_path, progress=False)
    assert again.calls == 0
    assert res2 == res1
    assert json.loads((tmp_path / "results.json").read_text()) == res1


def test_interrupted_run_resumes_where_it_stopped(bench, tmp_path):
    reference = evaluate(bench, Counting(bench), tmp_path / "ref", progress=False)
    n = len(bench.samples(bench.load()))
    cut = Counting(bench, stop_after=7)
    with pytest.raises(KeyboardInterrupt):
        evaluate(bench, cut, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "results.json").exists()
    assert len((tmp_path / "run" / CACHE_NAME).read_text().splitlines()) == 7
    # A write cut short leaves a torn last line: it is ignored and that sample asked again.
    with open(tmp_path / "run" / CACHE_NAME, "a") as f:
        f.write('{"id": "broken", "key": "ab')
    rest = Counting(bench)
    res = evaluate(bench, rest, tmp_path / "run", progress=False)
    assert rest.calls == n - 7
    assert res["metrics"] == reference["metrics"] and res["per_sample"] == reference["per_sample"]
    lines = (tmp_path / "run" / CACHE_NAME).read_text().splitlines()
    assert len(lines) == n and all(json.loads(line)["id"] for line in lines)  # compacted, torn line gone


def test_the_cache_is_a_predictions_file(bench, tmp_path):
    from regionlm.eval.baselines import PredictionsFile

    res = evaluate(bench, Counting(bench), tmp_path / "a", progress=False)
    again = evaluate(bench, PredictionsFile(tmp_path / "a" / CACHE_NAME, bench), tmp_path / "b", progress=False)
    assert again["metrics"] == res["metrics"]


def test_limit_reuses_the_cache_and_changed_inputs_are_asked_again(bench, tmp_path):
    evaluate(bench, Counting(bench), tmp_path, limit=3, progress=False)
    more = Counting(bench)
    evaluate(bench, more, tmp_path, limit=5, progress=False)
    samples = bench.samples(bench.load()[:5])
    assert more.calls == len(samples) - len(bench.samples(bench.load()[:3]))
    # Another prompt for the same id is another question: the cached answer is not reused.
    items = bench.load()[:5]
    items[0]["Question"] = items[0]["Question"] + " Think twice."
    changed = Counting(bench)
    bench_load = bench.load
    bench.load = lambda: items
    try:
        evaluate(bench, changed, tmp_path, progress=False)
    finally:
        bench.load = bench_load
    assert changed.calls == 1 + sum(s.id.endswith("@lookalike") for s in bench.samples(items[:1]))


def test_another_system_in_the_same_out_is_refused(bench, tmp_path):
    evaluate(bench, Counting(bench), tmp_path, progress=False)
    with pytest.raises(RegionLMError, match="another run"):
        evaluate(bench, RandomBaseline(bench, seed=1), tmp_path, progress=False)
    assert Path(tmp_path / CACHE_NAME).is_file()


def test_systems_that_read_pixels_need_the_videos(bench, tmp_path):
    class Model(Counting):
        needs_video = True

    with pytest.raises(RegionLMError, match="--video-root"):
        evaluate(bench, Model(bench), tmp_path, progress=False)  # generated without videos
    moved = get_benchmark("world-q")(BenchmarkOptions(data=bench.options.data, video_root=tmp_path / "elsewhere"))
    assert str(tmp_path / "elsewhere" / "videos") in moved.samples(moved.load())[0].video
