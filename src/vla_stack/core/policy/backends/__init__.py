"""Policy backends, selectable by name through `POLICIES` (a `Registry`).

    policy = POLICIES.create("builtin", checkpoint="", seed=0)
    policy = POLICIES.create("openpi", config=OpenPIConfig(host="gpu-box", port=8000))

- `builtin`: the flow-matching action expert trained in this repository (numpy inference,
  supports real-time chunking guidance).
- `openpi`: any server speaking the openpi policy-server websocket protocol (π0, π0.5, or
  `vla-stack serve-policy`).
"""

from vla_stack.core.registry import Registry

POLICIES = Registry("policy backend")

from vla_stack.core.policy.backends import builtin as _builtin  # noqa: E402,F401  (registers "builtin")
from vla_stack.core.policy.backends import openpi as _openpi  # noqa: E402,F401  (registers "openpi")

__all__ = ["POLICIES"]
