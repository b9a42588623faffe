"""Size and sampling settings of the built-in action expert, apart from its torch model.

`ActionExpertConfig` is read from every checkpoint: the numpy runtime (`runtime.py`), the
checkpoint loader and the action expert node need it, and none of them may import torch
(`model.py` is the torch model, for training only; a test checks torch stays out).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from vla_stack.core.policy.features import FEATURE_DIM
from vla_stack.core.policy.types import ACTION_DIM


@dataclass(frozen=True)
class ActionExpertConfig:
    """Size and sampling of the action expert."""

    horizon: int = field(default=16, metadata={"help": "actions per chunk H"})
    action_dim: int = field(default=ACTION_DIM, metadata={"help": "numbers per action (7 arm joints + gripper)"})
    feature_dim: int = field(default=FEATURE_DIM, metadata={"help": "length of the observation feature vector"})
    width: int = field(default=128, metadata={"help": "transformer width"})
    depth: int = field(default=4, metadata={"help": "number of transformer blocks"})
    heads: int = field(default=4, metadata={"help": "attention heads"})
    cond_tokens: int = field(default=4, metadata={"help": "condition tokens the action tokens attend to"})
    mlp_ratio: float = field(default=4.0, metadata={"help": "MLP hidden size / width"})
    flow_steps: int = field(default=10, metadata={"help": "Euler steps of the flow sampler"})
    control_period: float = field(default=0.05, metadata={"help": "time between chunk points, s"})

    def __post_init__(self) -> None:
        for name in ("horizon", "action_dim", "feature_dim", "width", "depth", "heads", "cond_tokens", "flow_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be divisible by heads {self.heads}")
        if not 0.001 <= self.control_period <= 1.0:
            raise ValueError(f"control_period must be 0.001..1 s, got {self.control_period}")

    def to_dict(self) -> dict:
        """JSON-serialisable fields."""
        return asdict(self)
