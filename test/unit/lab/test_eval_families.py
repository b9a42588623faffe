"""`vla-stack eval-grounding --family`: per-family evaluation, the worst family, leave-one-family-out calibration."""

import argparse
import json

import pytest

from vla_stack.cli import build_parser
from vla_stack.core.sim.mug_families import family_names
from vla_stack.lab.grounding import eval_grounding


def parse(argv):
    p = argparse.ArgumentParser()
    eval_grounding.add_eval_arguments(p)
    return p.parse_args(argv)


def test_family_flag_parses_repeated_comma_separated_and_all():
    args = build_parser().parse_args(["eval-grounding", "--family", "hue,photo", "--family", "hue", "--family", "text"])
    assert eval_grounding.parse_families(args.family) == ["hue", "photo", "text"]
    assert eval_grounding.parse_families(["all"]) == family_names()
    assert eval_grounding.parse_families(None) is None
    with pytest.raises(ValueError, match="did you mean 'mirror'"):
        eval_grounding.parse_families(["mirrors"])
    assert build_parser().parse_args(["textures", "--family", "plain", "-o", "x"]).family == "plain"
    assert build_parser().parse_args(["demo", "--family", "photo"]).family == "photo"


def _fake(correct, false_hl, ranked, ambiguous=0.0):
    s = {"correct_instance_rate": correct, "false_highlight_rate": false_hl, "wrong_highlight_rate": 0.0,
         "not_found_rate": 1.0 - correct - ambiguous, "ambiguous_rate": ambiguous, "ranking_accuracy": ranked,
         "baseline": {"correct_instance_rate": 0.3, "chance_rate": 0.33}}
    return {"summary": s, "scenes": {"count": 10}}


def test_family_report_names_the_worst_family_per_figure_and_checks_targets_on_the_worst():
    report = eval_grounding.family_report({
        "procedural": _fake(0.96, 0.01, 1.0),
        "photo": _fake(0.80, 0.20, 0.8),
        "hue": _fake(0.0, 0.0, 0.95, ambiguous=0.1),
    })
    assert report["worst_family"] == "hue"
    assert report["worst"]["correct_instance_rate"] == {"family": "hue", "value": 0.0}
    assert report["worst"]["false_highlight_rate"] == {"family": "photo", "value": 0.20}
    assert report["worst"]["ranking_accuracy"] == {"family": "photo", "value": 0.8}
    assert report["worst"]["ambiguous_rate"]["family"] == "hue"
    assert report["per_family"]["procedural"]["scenes"] == 10
    assert not any(report["targets_met"].values())
    good = eval_grounding.family_report({"a": _fake(0.97, 0.01, 1.0), "b": _fake(0.95, 0.02, 0.99, 0.03)})
    assert all(good["targets_met"].values()) and good["worst_family"] == "b"


def test_bad_family_arguments_exit_2_before_rendering_anything(tmp_path, capsys):
    assert eval_grounding.eval_main(parse(["--family", "hew", "--out", str(tmp_path / "r.json")])) == 2
    assert "did you mean 'hue'" in capsys.readouterr().err
    assert eval_grounding.eval_main(parse(["--family", "hue", "--objects", str(tmp_path)])) == 2
    assert "not both" in capsys.readouterr().err
    # leave-one-family-out: calibrating 'hue' on 'hue' alone leaves nothing to calibrate on
    assert eval_grounding.eval_main(parse(["--family", "hue", "--calibrate", "2", "--calibrate-families", "hue"])) == 2
    assert "no calibration family left for test family 'hue'" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_eval_grounding_per_family_end_to_end(tmp_path, capsys, sim_ok):
    out = tmp_path / "families.json"
    args = parse(["--family", "hue", "--family", "mirror", "--seeds", "1", "--first-seed", "1003", "--track-frames", "2",
                  "--views", "3", "--out", str(out), "--quiet"])
    assert eval_grounding.eval_main(args) == 0
    res = json.loads(out.read_text())
    assert res["benchmark"] == "grounding_families" and list(res["families"]) == ["hue", "mirror"]
    assert set(res["per_family"]) == {"hue", "mirror"}
    for fam, row in res["per_family"].items():
        assert row["scenes"] == 1
        for key in eval_grounding.FAMILY_FIGURES:
            assert 0.0 <= row[key] <= 1.0
        detail = res["results"][fam]["scenes_detail"][0]
        assert detail["seed"] == 1003 and all(t.startswith(f"{fam}:") for t in detail["texture_ids"])
        assert res["results"][fam]["calibration"]["source"] == "default"  # the shipped rule: nothing calibrated
    assert res["worst_family"] in ("hue", "mirror") and "targets_met" in res
    # same seed, same layout: the scene's mug count and "mine" do not depend on the family
    hue, mirror = (res["results"][f]["scenes_detail"][0] for f in ("hue", "mirror"))
    assert hue["mugs"] == mirror["mugs"]
    printed = capsys.readouterr().out
    assert "per texture family" in printed and "worst family" in printed


def test_calibration_never_sees_the_family_under_test(tmp_path, capsys, sim_ok):
    out = tmp_path / "families.json"
    args = parse(["--family", "hue", "--calibrate", "1", "--calibrate-families", "hue,plain", "--seeds", "1",
                  "--first-seed", "1003", "--track-frames", "0", "--views", "3", "--out", str(out), "--quiet"])
    assert eval_grounding.eval_main(args) == 0
    cal = json.loads(out.read_text())["results"]["hue"]["calibration"]
    assert cal["source"] == "calibrated" and cal["families"] == ["plain"] and cal["left_out"] == "hue"
    assert cal["scenes_per_family"] == 1 and cal["positives"] > 0
    assert "left out: hue" in capsys.readouterr().out


def test_demo_refuses_an_unknown_family_or_family_with_objects_before_starting_anything(tmp_path, capsys):
    from vla_stack.lab.demo_runner import run_demo

    assert run_demo(build_parser().parse_args(["demo", "--family", "txt", "--out", str(tmp_path / "d")])) == 2
    assert "did you mean 'text'" in capsys.readouterr().err
    assert run_demo(build_parser().parse_args(["demo", "--family", "hue", "--objects", str(tmp_path),
                                               "--out", str(tmp_path / "d")])) == 2
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
