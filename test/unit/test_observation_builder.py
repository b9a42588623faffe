"""ObservationBuilder: where the place point comes from (parameter > planner subtask > grounding)."""

import json

import numpy as np
import pytest

from vla_stack.core.policy.observation_builder import InputRejected, ObservationBuilder, ObservationConfig
from vla_stack.core.types import Pose


def test_place_point_priority_parameter_then_subtask_then_grounding():
    b = ObservationBuilder(ObservationConfig())
    assert b.place is None
    b.update_place(Pose(np.array([0.45, 0.36, 0.06]), frame_id="panda_link0"))
    assert b.place_source == "grounding" and np.allclose(b.place, [0.45, 0.36, 0.06])
    sub = {"skill": "place", "arguments": {"place_position": [0.5, -0.3, 0.07]}, "index": 1, "status": "active"}
    b.update_subtask(json.dumps(sub), 1.0)
    assert b.place_source == "subtask"
    b.update_place(Pose(np.array([0.1, 0.1, 0.1]), frame_id="panda_link0"))  # grounding no longer overrides
    assert np.allclose(b.place, [0.5, -0.3, 0.07])
    fixed = ObservationBuilder(ObservationConfig(place_position=(0.4, 0.0, 0.05)))
    fixed.update_place(Pose(np.array([0.45, 0.36, 0.06]), frame_id="panda_link0"))
    assert fixed.place_source == "parameter" and np.allclose(fixed.place, [0.4, 0.0, 0.05])


@pytest.mark.parametrize("bad", [Pose(np.array([np.nan, 0, 0]), frame_id="panda_link0"),
                                 Pose(np.zeros(3), frame_id="camera_color_optical_frame"),
                                 Pose(np.array([5.0, 0, 0]), frame_id="panda_link0")])
def test_bad_place_targets_are_rejected_and_change_nothing(bad):
    b = ObservationBuilder(ObservationConfig())
    with pytest.raises(InputRejected):
        b.update_place(bad)
    assert b.place is None
