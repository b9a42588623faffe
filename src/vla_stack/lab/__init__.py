"""The lab: what only evaluates, trains, generates data or runs demos. A robot running the stack never executes it.

Runtime code (`vla_stack.core`, `vla_stack.ros`, `bringup`, `launch_helpers`, `paths`) never
imports this package (test/unit/test_runtime_lab_boundary.py enforces it); `vla_stack.cli` is the
one entry point that wires lab commands in, importing them only for their arguments.

- `demo_runner`: `vla-stack demo`, the whole stack in simulation judged from ground truth.
- `scripted_pick_node`: the scripted IK pick-and-place baseline node (console script kept).
- `policy/`: the scripted expert, episode simulation, data generation, the training dataset,
  training, closed-loop evaluation (with ground-truth or grounded targets), `vla-stack train-expert`.
- `grounding/`: simulated references and scenes (`vla-stack enroll --from-sim`),
  `vla-stack eval-grounding`, `vla-stack train-grounding-metric`.
- `safety/`: replay of timed input streams through the safety controller (property tests, bench).
"""
