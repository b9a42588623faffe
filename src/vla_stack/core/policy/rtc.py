"""Real-time chunking (RTC): guided flow-matching inpainting of the next chunk.

Black, Galliker, Levine 2025, "Real-Time Execution of Action Chunking Flow Policies"
(arXiv 2506.07339). While the current chunk executes, the next one is generated from a newer
observation. By the time it is ready, `d` more steps (the inference delay) have been executed
from the current chunk; those actions are already committed. RTC therefore generates the new
chunk as an inpainting problem:

- the first `d` actions are *frozen*: guided to equal the committed ones (weight 1);
- the rest of the overlap with the current chunk (up to step `H - s`, s = execution horizon)
  is guided softly, with weights decaying exponentially to 0;
- actions after the overlap are free.

Guidance (ΠGDM, as in the paper): at flow time τ with noisy actions A_τ and velocity v, the
predicted clean chunk is Â = A_τ + (1 - τ) v. The velocity is corrected by

    v' = v + min(β, (1 - τ) / (τ · r²_τ)) · [(Y - Â) ⊙ W]ᵀ ∂Â/∂A_τ,   r²_τ = (1 - τ)² / (τ² + (1 - τ)²)

where Y is the committed prefix, W the per-step weights and β the guidance clip (5 in the
paper). The vector-Jacobian product is one backward pass through the model per flow step.

Cheaper guidance (the built-in expert's default, `BuiltinExpertConfig.guidance_vjp_steps`): since
∂Â/∂A_τ = I + (1 - τ) ∂v/∂A_τ, the correction splits into e = (Y - Â) ⊙ W plus
(1 - τ) eᵀ ∂v/∂A_τ. The numpy sampler (`runtime.NumpyActionExpert.sample`, `vjp_steps`) can keep
the network term in the first k flow steps only and use the identity Jacobian (correction e,
same gain and weights) afterwards; k = 0 never back-propagates, so a guided chunk costs about as
much as an unguided one. The guidance is still applied at every step (dropping it in the late
steps loses the prefix: the frozen actions drift about twice as far). Measured on the shipped
expert: the frozen prefix is held at least as tightly as with the full VJP (bench/expert.py
prints both) and the closed-loop results under 4 and 8 steps of injected delay (success, task
time, boundary jumps; `bench/chunking.py --strategies rtc`) are no worse. The full guidance stays
available (`guidance_vjp_steps = -1`) and is what `make_guide` below implements.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is only needed by `make_guide` (training-side sampling)
    from torch import Tensor

SCHEDULES = ("exp", "linear", "ones", "zeros")
"""Soft-mask schedules over the overlap (the paper uses "exp"; "zeros" = hard mask of the
first d steps only)."""


def prefix_weights(delay: int, overlap_end: int, horizon: int, schedule: str = "exp") -> np.ndarray:
    """Guidance weights W (horizon,) of the RTC soft mask.

    Args:
        delay: d, steps executed from the old chunk before the new one arrives (weight 1).
        overlap_end: H - s, the first step the old chunk no longer covers (weight 0 from here).
        horizon: H.
        schedule: how the weights decay between d and overlap_end (see `SCHEDULES`).

    Returns:
        1 for i < d; for d <= i < overlap_end a decay from 1 towards 0; 0 for i >= overlap_end.
        With the "exp" schedule w_i = c_i (e^{c_i} - 1) / (e - 1), c_i = (overlap_end - i) /
        (overlap_end - d + 1), as in the paper.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown RTC schedule '{schedule}' (known: {SCHEDULES})")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    end = int(np.clip(overlap_end, 0, horizon))
    start = int(np.clip(delay, 0, end))
    i = np.arange(horizon, dtype=np.float64)
    if schedule == "ones":
        w = np.ones(horizon)
    elif schedule == "zeros":
        w = (i < start).astype(np.float64)
    else:
        w = np.clip((end - i) / (end - start + 1), 0.0, 1.0)
        w[:start] = 1.0
        if schedule == "exp":
            soft = w * np.expm1(w) / (math.e - 1.0)
            w = np.where(i < start, 1.0, soft)
    w[i >= end] = 0.0
    return w


def guidance_gain(tau: float, max_guidance_weight: float) -> float:
    """min(β, (1 - τ) / (τ · r²_τ)) with r²_τ = (1 - τ)² / (τ² + (1 - τ)²); β at τ = 0."""
    if tau <= 0.0:
        return float(max_guidance_weight)
    if tau >= 1.0:
        return 0.0
    one_minus = 1.0 - tau
    r2 = one_minus**2 / (tau**2 + one_minus**2)
    return float(min(max_guidance_weight, one_minus / (tau * r2)))


def make_guide(
    prefix: Tensor, weights: Tensor, max_guidance_weight: float = 5.0
) -> Callable[[Tensor, Tensor | None, float, Callable[[Tensor], Tensor]], Tensor]:  # noqa: F821
    """A `guide` callback for `ActionExpert.sample` that inpaints towards `prefix`.

    Args:
        prefix: (B, H, D) committed actions, in the model's normalised action space.
        weights: (H,) or (B, H) per-step weights W (`prefix_weights`).
        max_guidance_weight: β.
    """
    import torch

    w = weights if weights.dim() == 2 else weights[None, :]
    w = w[..., None].to(prefix.dtype)

    def guide(x: Tensor, _v: Tensor | None, tau: float, velocity_fn: Callable[[Tensor], Tensor]) -> Tensor:
        x = x.detach().requires_grad_(True)
        v = velocity_fn(x)
        predicted = x + (1.0 - tau) * v
        error = ((prefix - predicted) * w).detach()
        (correction,) = torch.autograd.grad(predicted, x, grad_outputs=error)
        return (v + guidance_gain(tau, max_guidance_weight) * correction).detach()

    return guide
