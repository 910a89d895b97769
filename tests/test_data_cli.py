"""`regionlm data validate` through its own argparse wiring (the top-level CLI calls add_parser the same way)."""

import argparse
import json

import numpy as np
import pytest
from shared_data import DATA

from regionlm.data.cli import add_parser
from regionlm.errors import RegionLMError
from regionlm.regions import mask_to_rle


def run(argv):
    parser = argparse.ArgumentParser(prog="regionlm")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def sample(sid, counts="ok"):
    rle = mask_to_rle(np.ones((4, 4), dtype=bool))
    if counts is None:
        rle["counts"] = None
    return {"id": sid, "video": "v.mp4", "height": 4, "width": 4,
            "conversations": [{"from": "human", "value": "<region>?"}, {"from": "gpt", "value": "A cup."}],
            "annotation": [{"0": {"segmentation": rle}, "6": {"segmentation": mask_to_rle(np.eye(4, dtype=bool))}}]}


@pytest.fixture()
def files(tmp_path):
    good, mixed = tmp_path / "good.json", tmp_path / "mixed.json"
    good.write_text(json.dumps([sample("a"), sample("b")]))
    mixed.write_text(json.dumps([sample("a"), sample("b", counts=None), sample("c", counts=None)]))
    return good, mixed


def test_validate_good_file(files, capsys):
    good, _ = files
    assert run(["data", "validate", str(good), "--format", "canonical"]) == 0
    assert "2 records ok, 0 skipped" in capsys.readouterr().out


def test_validate_raise_mode_exit_2_names_the_record(files, capsys):
    _, mixed = files
    assert run(["data", "validate", str(mixed), "--format", "canonical"]) == 2
    err = capsys.readouterr().err
    assert str(mixed) in err and "record 'b'" in err and "segmentation.counts" in err and len(err.splitlines()) == 1


def test_validate_skip_mode_lists_every_skipped_record(files, capsys):
    _, mixed = files
    assert run(["data", "validate", str(mixed), "--format", "canonical", "--errors", "skip"]) == 1
    out = capsys.readouterr().out
    assert "1 records ok, 2 skipped" in out and "record 'b'" in out and "record 'c'" in out


def test_validate_json_output(files, capsys):
    good, mixed = files
    assert run(["data", "validate", str(mixed), "--format", "canonical", "--errors", "skip", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["ok"] == 1 and report["skipped"] == 2
    assert [r["record"] for r in report["report"]] == ["b", "c"]
    assert report["report"][0]["field"] == 'annotation[0]["0"].segmentation.counts'

    assert run(["data", "validate", str(mixed), "--format", "canonical", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["error"]["record"] == "b"

    assert run(["data", "validate", str(good), "--format", "canonical", "--num-frames", "6", "--json"]) == 2
    assert "frame 6 is out of range" in json.loads(capsys.readouterr().out)["error"]["reason"]


def test_validate_option_and_format_errors(files, tmp_path, capsys):
    good, _ = files
    with pytest.raises(RegionLMError, match="--num-frames does not apply to format 'sot'"):
        run(["data", "validate", str(tmp_path), "--format", "sot", "--num-frames", "3"])
    with pytest.raises(SystemExit):
        run(["data", "validate", str(good), "--format", "nonsense"])
    capsys.readouterr()
    assert run(["data", "formats"]) == 0
    assert "videorefer-q" in capsys.readouterr().out


def test_validate_real_vot_folder(capsys):
    path = DATA / "vot15-bag"
    if not path.exists():
        pytest.skip("real test data not available")
    assert run(["data", "validate", str(path), "--format", "vot"]) == 0
    assert "1 records ok" in capsys.readouterr().out
