"""Flow-matching action-chunk transformer (the built-in action expert), in torch.

Architecture, in the style of the π0 / GR00T action experts, sized for CPU real time:

- condition: the normalised observation features (`features.FEATURE_DIM`) go through an MLP
  that yields `cond_tokens` tokens of width `width` plus one global condition vector;
- action tokens: each of the H noisy actions (8 numbers) is embedded linearly and gets a
  learned position embedding;
- `depth` DiT blocks: adaptive layer norm (shift/scale/gate from flow time τ + global
  condition), attention of the H action tokens over [condition tokens; action tokens] (the
  condition keys/values are computed once per chunk, like π0's prefix KV cache), MLP;
- output: the flow velocity of each action (8 numbers).

Flow matching convention: τ ∈ [0, 1], τ = 0 is noise ε, τ = 1 the data x; the model learns the
velocity v = x - ε of the straight path x_τ = (1 - τ) ε + τ x. Sampling integrates
dx/dτ = v(x, τ) with `flow_steps` Euler steps from seeded Gaussian noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vla_stack.core.policy.expert_config import ActionExpertConfig


def timestep_embedding(tau: Tensor, dim: int, max_period: float = 100.0) -> Tensor:
    """Sinusoidal embedding (..., dim) of flow time τ ∈ [0, 1] (scaled by 1000 as in DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=tau.dtype, device=tau.device) / half)
    args = (tau[..., None] * 1000.0 / max_period) * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class _Block(nn.Module):
    """DiT block: adaptive layer norm (shift/scale/gate from τ + global condition), attention of
    the action tokens over [condition tokens; action tokens] (π0-style prefix attention, the
    condition keys/values computed once per chunk), MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.cond_kv = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.modulation = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def _split(self, x: Tensor) -> Tensor:
        b, n, w = x.shape
        return x.view(b, n, self.heads, w // self.heads).transpose(1, 2)

    def condition_kv(self, cond: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values (B, heads, K, w/heads) of the condition tokens (once per chunk)."""
        k, v = self.cond_kv(cond).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def forward(self, x: Tensor, cond_kv: tuple[Tensor, Tensor], c: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(c)).unsqueeze(1).chunk(6, dim=-1)
        b, n, w = x.shape
        h = self.norm1(x) * (1 + scale1) + shift1
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        k = torch.cat([cond_kv[0], self._split(k)], dim=2)
        v = torch.cat([cond_kv[1], self._split(v)], dim=2)
        attn = F.scaled_dot_product_attention(self._split(q), k, v)
        x = x + gate1 * self.proj(attn.transpose(1, 2).reshape(b, n, w))
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.fc2(F.gelu(self.fc1(h), approximate="tanh"))


class ActionExpert(nn.Module):
    """The flow-matching action-chunk transformer. See the module docstring.

    Args:
        config: sizes (`ActionExpertConfig`).
    """

    def __init__(self, config: ActionExpertConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or ActionExpertConfig()
        w = cfg.width
        self.cond_mlp = nn.Sequential(
            nn.Linear(cfg.feature_dim, 2 * w), nn.GELU(approximate="tanh"), nn.Linear(2 * w, (cfg.cond_tokens + 1) * w)
        )
        self.cond_pos = nn.Parameter(torch.randn(cfg.cond_tokens, w) * 0.02)
        self.cond_norm = nn.LayerNorm(w, eps=1e-6)
        self.action_in = nn.Linear(cfg.action_dim, w)
        self.action_pos = nn.Parameter(torch.randn(cfg.horizon, w) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList(_Block(w, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.out_modulation = nn.Linear(w, 2 * w)
        nn.init.zeros_(self.out_modulation.weight)
        nn.init.zeros_(self.out_modulation.bias)
        self.action_out = nn.Linear(w, cfg.action_dim)
        nn.init.zeros_(self.action_out.weight)
        nn.init.zeros_(self.action_out.bias)

    # ---- conditioning (once per chunk) ----------------------------------------------------------
    def encode_condition(self, features: Tensor) -> tuple[list[tuple[Tensor, Tensor]], Tensor]:
        """Per-block condition keys/values (the prefix "KV cache") and the global condition vector.

        Args:
            features: (B, feature_dim) normalised observation features.
        """
        cfg = self.config
        out = self.cond_mlp(features).view(features.shape[0], cfg.cond_tokens + 1, cfg.width)
        tokens = self.cond_norm(out[:, 1:] + self.cond_pos)
        return [blk.condition_kv(tokens) for blk in self.blocks], out[:, 0]

    # ---- velocity -----------------------------------------------------------------------------------
    def velocity(self, x: Tensor, tau: Tensor, cond: tuple[list[tuple[Tensor, Tensor]], Tensor]) -> Tensor:
        """Flow velocity (B, H, action_dim) at noisy actions `x` (B, H, action_dim), time `tau` (B,)."""
        kvs, global_c = cond
        c = global_c + self.time_mlp(timestep_embedding(tau, self.config.width))
        h = self.action_in(x) + self.action_pos
        for blk, kv in zip(self.blocks, kvs, strict=True):
            h = blk(h, kv, c)
        shift, scale = self.out_modulation(F.silu(c)).unsqueeze(1).chunk(2, dim=-1)
        return self.action_out(self.norm_out(h) * (1 + scale) + shift)

    def forward(self, x: Tensor, tau: Tensor, features: Tensor) -> Tensor:
        """Velocity for training: condition encoded on the fly."""
        return self.velocity(x, tau, self.encode_condition(features))

    # ---- training loss ------------------------------------------------------------------------------
    def loss(self, actions: Tensor, features: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Flow-matching loss (mean squared velocity error) on normalised `actions` (B, H, D).

        τ is drawn from Beta(1, 1.5) (as π0: more weight on the noisy end τ ≈ 0, where the
        velocity is hardest to predict), clipped away from 1.
        """
        b = actions.shape[0]
        noise = torch.randn(actions.shape, generator=generator, dtype=actions.dtype)
        u = torch.rand(b, generator=generator, dtype=actions.dtype)
        tau = (1.0 - u.pow(1.0 / 1.5)).clamp(0.0, 0.999)  # inverse CDF of Beta(1, 1.5)
        t = tau[:, None, None]
        x_tau = (1.0 - t) * noise + t * actions
        target = actions - noise
        return F.mse_loss(self(x_tau, tau, features), target)

    # ---- sampling -----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        features: Tensor,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        noise_scale: float = 1.0,
        guide: Callable[[Tensor, Tensor, float, Callable[[Tensor], Tensor]], Tensor] | None = None,
    ) -> Tensor:
        """Normalised action chunks (B, H, action_dim) for `features` (B, feature_dim).

        Args:
            features: normalised observation features.
            generator: torch RNG for the initial noise (seeded sampler).
            steps: Euler steps (default `config.flow_steps`).
            noise_scale: std of the initial noise (1 = the trained distribution).
            guide: optional `guide(x, v, tau, velocity_fn) -> corrected v` applied at every step
                (real-time chunking inpainting, `rtc.guided_velocity`).
        """
        cfg = self.config
        n = int(steps or cfg.flow_steps)
        b = features.shape[0]
        x = noise_scale * torch.randn((b, cfg.horizon, cfg.action_dim), generator=generator, dtype=features.dtype)
        cond = self.encode_condition(features)
        dt = 1.0 / n
        for i in range(n):
            tau = i * dt
            tau_t = torch.full((b,), tau, dtype=features.dtype)

            def velocity_fn(xx: Tensor, tau_t: Tensor = tau_t) -> Tensor:
                return self.velocity(xx, tau_t, cond)

            if guide is None:
                v = velocity_fn(x)
            else:
                with torch.enable_grad():
                    v = guide(x, None, tau, velocity_fn)  # type: ignore[arg-type]
            x = x + dt * v
        return x

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())
