"""The robot-side expert runs on numpy: importing the runtime, the built-in backend or the
action expert node must not import torch (torch is for training, `model.py` / `train.py`)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

RUNTIME_MODULES = [
    "vla_stack.core.policy.runtime",
    "vla_stack.core.policy.checkpoint",
    "vla_stack.core.policy.backends.builtin",
    "vla_stack.ros.action_expert_node",
]


@pytest.mark.parametrize("module", RUNTIME_MODULES)
def test_importing_the_numpy_runtime_leaves_torch_out(module):
    if module.startswith("vla_stack.ros.") and importlib.util.find_spec("rclpy") is None:
        pytest.skip("rclpy not installed")
    code = (f"import sys, {module}\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "print('TORCH' if bad else 'CLEAN', len(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == "CLEAN", f"importing {module} imported torch ({out.stdout.strip()} torch modules)"


def test_the_torch_model_still_reads_the_same_config():
    from vla_stack.core.policy.expert_config import ActionExpertConfig
    from vla_stack.core.policy.model import ActionExpert

    config = ActionExpertConfig(width=32, depth=1, heads=2)
    assert ActionExpert(config).config is config
