"""The lab's grounding commands: `vla-stack enroll --from-sim`, `eval-grounding`, `train-grounding-metric` (lab/grounding/)."""

import argparse
import json

import numpy as np

from vla_stack.core.grounding import cli
from vla_stack.core.grounding.memory import PersonalObjectMemory
from vla_stack.lab.grounding import eval_grounding, sim_scenes, train_metric


def parse(add, argv):
    p = argparse.ArgumentParser()
    add(p)
    return p.parse_args(argv)


def add_all_enroll_arguments(parser):
    """`vla-stack enroll`'s arguments as vla_stack.cli wires them: the runtime ones, then the simulator's."""
    cli.add_enroll_arguments(parser)
    sim_scenes.add_sim_enroll_arguments(parser)


def test_enroll_from_sim_renders_exact_masks(tmp_path, capsys, sim_ok):
    args = parse(add_all_enroll_arguments, ["sim_mug", "--from-sim", "3", "--views", "3", "--size", "128",
                                            "--memory", str(tmp_path)])
    assert sim_scenes.enroll_from_sim_main(args) == 0
    obj = PersonalObjectMemory(tmp_path).get("sim_mug")
    assert obj.source.startswith("sim:seed=3") and len(obj.crops) == 3
    for c in obj.crops:
        frac = c.mask.mean()
        assert 0.3 < frac < 0.95  # a mug-shaped cut-out, not the whole backdrop


def test_eval_grounding_smoke(tmp_path, capsys, sim_ok):
    out = tmp_path / "grounding.json"
    args = parse(eval_grounding.add_eval_arguments, ["--seeds", "1", "--first-seed", "1003", "--track-frames", "2", "--views", "3",
                                          "--out", str(out), "--quiet"])
    assert eval_grounding.eval_main(args) == 0
    res = json.loads(out.read_text())
    s = res["summary"]
    for key in ("correct_instance_rate", "mean_iou", "false_highlight_rate"):
        assert 0.0 <= s[key] <= 1.0
    assert s["baseline"]["false_highlight_rate"] == 1.0  # the generic grounder always picks some cup
    assert res["scenes"]["count"] == 1 and len(res["scenes_detail"]) == 1
    assert s["latency_s"]["detection"]["n"] == 2
    assert "targets_met" in res and "calibration" in res
    assert "correct instance" in capsys.readouterr().out


def test_train_grounding_metric_collects_labelled_views_and_writes_a_usable_projection(tmp_path, capsys, sim_ok):
    from vla_stack.core.grounding.embedders import AppearanceEmbedder
    from vla_stack.core.grounding.metric import MetricProjection

    part = train_metric.scene_features(2000)
    n_mugs = len(np.unique(part["instance"]))
    assert n_mugs >= 2 and part["features"].shape == (len(part["instance"]), AppearanceEmbedder(projection="none").feature_dim)
    for ident in np.unique(part["instance"]):  # 5 studio references and (here) one scene crop per mug
        sel = part["instance"] == ident
        assert int(np.count_nonzero(sel & part["is_reference"])) == 5
        assert int(np.count_nonzero(sel & ~part["is_reference"])) <= 1
    assert part["is_mine"].any() and not part["is_mine"].all()

    out, cache = tmp_path / "metric.npz", tmp_path / "features.npz"
    argv = ["--seeds", "2000:2002", "--dim", "4", "--workers", "1", "--cache", str(cache), "--out", str(out)]
    args = parse(train_metric.add_train_arguments, argv)
    assert train_metric.train_main(args) == 0
    assert "collected" in capsys.readouterr().out and cache.is_file()
    assert train_metric.train_main(args) == 0  # second run: features from the cache
    assert "features of 2 scene(s) from" in capsys.readouterr().out
    proj = MetricProjection.load(out)
    assert proj.output_dim == 4 and "2000:2002" in proj.info
    emb = AppearanceEmbedder(projection=str(out))
    assert emb.dim == 4
    bad = parse(train_metric.add_train_arguments, ["--seeds", "5:2", "--out", str(out)])
    assert train_metric.train_main(bad) == 2


def test_vla_stack_enroll_routes_from_sim_to_the_lab(tmp_path, capsys):
    """`vla-stack enroll ... --from-sim` goes to the lab's command (which refuses IMAGES next to it), without it to core's."""
    from vla_stack.cli import main

    assert main(["enroll", "x", str(tmp_path / "a.png"), "--from-sim", "3", "--memory", str(tmp_path)]) == 2
    assert "either IMAGES or --from-sim" in capsys.readouterr().err
    assert main(["enroll", "x", "--memory", str(tmp_path)]) == 2
    assert "no reference images" in capsys.readouterr().err
