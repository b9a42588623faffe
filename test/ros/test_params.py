"""The parameter layer (vla_stack.ros.params): config dataclasses <-> ROS parameters, with tuples,
empty lists and nested / per-backend configs handled once so nodes need no patches."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import pytest

from vla_stack.core.planning.backends import PLANNERS, OfflinePlannerConfig, VlmPlannerConfig
from vla_stack.core.policy.backends import POLICIES
from vla_stack.core.policy.backends.openpi import OpenPIConfig
from vla_stack.core.policy.observation_builder import ObservationConfig
from vla_stack.core.registry import Registry
from vla_stack.ros import params


@dataclass(frozen=True)
class _Inner:
    gain: float = field(default=1.0, metadata={"help": "a gain"})


@dataclass(frozen=True)
class _Config:
    names: tuple[str, ...] = field(default=("a", "b"), metadata={"help": "names"})
    point: tuple[float, ...] = field(default=(), metadata={"help": "[] or [x, y, z], m"})
    inner: _Inner = field(default_factory=_Inner, metadata={"help": "nested"})
    hidden: _Inner = field(default_factory=_Inner, metadata={"help": "not a parameter", "parameter": False})

    def __post_init__(self) -> None:
        if not isinstance(self.names, tuple) or not isinstance(self.point, tuple):
            raise ValueError("names and point must be tuples")
        if len(self.point) not in (0, 3):
            raise ValueError("point needs 3 values or none")


def test_lists_become_tuples_and_an_empty_or_unset_list_the_empty_default(caplog):
    log = logging.getLogger("test_params")
    cfg = params.config_from_parameters(_Config, {"names": ["x"], "point": [1, 2, 3]}, log)
    assert cfg.names == ("x",) and cfg.point == (1.0, 2.0, 3.0) and isinstance(cfg.point, tuple)
    for unset in (None, [], ()):
        assert params.config_from_parameters(_Config, {"point": unset, "names": unset}, log).names == ()
    with caplog.at_level(logging.ERROR):
        cfg = params.config_from_parameters(_Config, {"point": [1.0]}, log)
    assert cfg.point == () and "parameter point=(1.0,) rejected (point needs 3 values or none)" in caplog.text
    with caplog.at_level(logging.ERROR):
        assert params.config_from_parameters(_Config, {"names": "abc"}, log).names == ("a", "b")
    assert "expected a list" in caplog.text


def test_nested_configs_are_prefixed_parameters_and_parameter_false_is_skipped():
    spec = params.dataclass_parameter_spec(_Config, prefix="x.")
    assert set(spec) == {"x.names", "x.point", "x.inner.gain"}
    assert spec["x.inner.gain"] == (1.0, "a gain") and spec["x.point"] == ((), "[] or [x, y, z], m")
    cfg = params.config_from_parameters(_Config, {"x.inner.gain": 2, "x.hidden.gain": 5.0}, logging.getLogger(), "x.")
    assert cfg.inner == _Inner(2.0) and cfg.hidden == _Inner(1.0)


def test_backends_carry_their_config_class_and_nodes_declare_them_generically():
    assert POLICIES.config_class("openpi") is OpenPIConfig
    assert PLANNERS.config_class("vlm") is VlmPlannerConfig and PLANNERS.config_class("offline") is OfflinePlannerConfig
    spec = params.backend_parameter_spec(POLICIES)
    assert spec["builtin.seed"][0] == 0 and "flow sampler" in spec["builtin.seed"][1]
    assert spec["openpi.keys.images"][0] == ("observation/image=prompted",) and "openpi.port" in spec
    planner_spec = params.backend_parameter_spec(PLANNERS)
    assert "vlm.model_path" in planner_spec and "offline.max_steps" in planner_spec
    assert not any(k.startswith("vlm.fallback") for k in planner_spec)  # the node passes its offline planner
    values = {k: v for k, (v, _) in spec.items()} | {"openpi.port": 9000, "openpi.keys.images": ["a=prompted"]}
    cfg = params.backend_config_from_parameters(POLICIES, "openpi", values, logging.getLogger())
    assert cfg.port == 9000 and cfg.keys.images == ("a=prompted",)
    with pytest.raises(KeyError, match="did you mean 'openpi'"):
        POLICIES.config_class("openpl")
    with pytest.raises(ValueError, match="must be a dataclass"):
        Registry("thing").register("x", config=dict)


def test_declare_parameters_reads_empty_lists_and_tuples_from_a_yaml_file(_rclpy_context, tmp_path):
    rclpy, context = _rclpy_context
    (tmp_path / "p.yaml").write_text(
        "/**:\n  ros__parameters:\n    empty: []\n    tuple_from_yaml: [0.4, -0.3, 0.07]\n    names: []\n")
    node = rclpy.create_node("params_probe", context=context,
                             cli_args=["--ros-args", "--params-file", str(tmp_path / "p.yaml")])
    try:
        values = params.declare_parameters(node, {
            "empty": ((1.0, 2.0), "tuple default, emptied by the YAML"),
            "tuple_from_yaml": ((), "empty tuple default, set by the YAML"),
            "names": (["a"], "list default, emptied by the YAML"),
            "untouched_empty": ([], "empty default, not in the YAML"),
            "untouched_tuple": (("left", "right"), "tuple default, not in the YAML"),
        })
        assert values == {"empty": (), "tuple_from_yaml": (0.4, -0.3, 0.07), "names": [], "untouched_empty": [],
                          "untouched_tuple": ("left", "right")}
        described = node.describe_parameter("untouched_tuple")
        assert described.description == "tuple default, not in the YAML" and described.dynamic_typing
    finally:
        node.destroy_node()


def test_action_expert_reads_an_empty_list_and_a_tuple_from_its_yaml(start_node, ros_node, tmp_path):
    """Real process: `inputs.tactile_pads: []` (an empty list for a tuple field) really means no pads,
    and `inputs.place_position` (a tuple field) is accepted, with nothing rejected."""
    yaml = tmp_path / "action_expert.yaml"
    yaml.write_text("/**/action_expert:\n  ros__parameters:\n    inputs.use_tactile: true\n"
                    "    inputs.tactile_pads: []\n    inputs.place_position: [0.4, -0.3, 0.07]\n")
    node = start_node("action_expert_node", name="action_expert", param_files=[yaml])
    assert node.wait_for_output("action_expert: backend builtin", timeout=90), node.text()[-3000:]
    graph = ros_node.node
    assert ros_node.wait_until(lambda: graph.count_subscribers("/wrench") >= 1, timeout=30), node.text()[-3000:]
    assert graph.count_subscribers("/tactile/left/force") == 0 and graph.count_subscribers("/tactile/right/image") == 0
    assert "rejected" not in node.text(), node.text()[-3000:]
    assert dataclasses.fields(ObservationConfig)  # the config the node built from these parameters
