"""CPU inference runtime of the action expert in numpy: forward pass and its vector-Jacobian
product, for real-time chunking at control rate.

Why: the expert is small (a few hundred thousand to two million weights), so on a CPU its cost
is dominated by per-operation overhead, not arithmetic. A torch forward pass of a 16-token
transformer costs tens of microseconds per operation; numpy costs a few. This module runs
exactly the network of `vla_stack.core.policy.model.ActionExpert` (same weights, same maths,
float32) for one observation at a time, including the hand-written backward pass w.r.t. the
noisy actions that RTC guidance needs (a test checks it against torch autograd).

Training stays in torch (`model.py`, `train.py`); this is inference only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from vla_stack.core.policy.expert_config import ActionExpertConfig
from vla_stack.core.policy.rtc import guidance_gain

_GELU_C = math.sqrt(2.0 / math.pi)
_EPS = 1e-6


_sum = np.add.reduce  # ndarray.mean() costs ~10x more Python overhead than the arithmetic here


@functools.cache
def _mean_ops(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, n) centring matrix I - 1/n and (n, 1) averaging column: at these sizes a small matmul
    is cheaper than a keepdims reduction followed by a broadcast."""
    return (np.eye(n) - 1.0 / n).astype(np.float32), np.full((n, 1), 1.0 / n, dtype=np.float32)


def _layer_norm(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x̂, 1/σ) of a layer norm without affine over the last axis (eps 1e-6)."""
    center, mean = _mean_ops(x.shape[-1])
    xc = x @ center
    var = (xc * xc) @ mean
    var += _EPS
    rstd = np.sqrt(var, out=var)
    np.reciprocal(rstd, out=rstd)
    xc *= rstd
    return xc, rstd


def _layer_norm_backward(dxhat: np.ndarray, xhat: np.ndarray, rstd: np.ndarray) -> np.ndarray:
    """dx = (1/σ) (dx̂ - mean(dx̂) - x̂ · mean(dx̂ ⊙ x̂))."""
    center, mean = _mean_ops(dxhat.shape[-1])
    dx = dxhat @ center
    dx -= xhat * ((dxhat * xhat) @ mean)
    dx *= rstd
    return dx


def _silu(x: np.ndarray) -> np.ndarray:
    return x * (0.5 + 0.5 * np.tanh(0.5 * x))  # = x · sigmoid(x), without overflow


def _gelu2(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2 · gelu_tanh(u) = u (1 + t), t = tanh(c (u + 0.044715 u³)) (the 1/2 is folded into fc2)."""
    t = u * u
    t *= _GELU_C * 0.044715
    t += _GELU_C
    t *= u
    np.tanh(t, out=t)
    g = t + 1.0
    g *= u
    return g, t


def _gelu2_grad(u: np.ndarray, t: np.ndarray) -> np.ndarray:
    """d(2 · gelu_tanh(u))/du = (1 + t) + u (1 - t²) c (1 + 3 · 0.044715 u²)."""
    a = u * u
    a *= 3 * 0.044715 * _GELU_C
    a += _GELU_C
    a *= u
    b = t * t
    np.subtract(1.0, b, out=b)
    a *= b
    a += t
    a += 1.0
    return a


@dataclass
class _BlockWeights:
    """Weights of one block, rearranged for inference (the maths is unchanged):

    - `*_t` are transposed copies (in, out) for the forward pass, the untransposed (out, in) ones
      serve the backward pass (contiguous either way: BLAS on a transposed view is several times
      slower at these sizes);
    - the query rows of `qkv` carry the attention scale 1/√(width/heads);
    - `fc2` carries the 1/2 of the GELU (`_gelu2` returns 2 · gelu);
    - `mod_b` has 1 added to the two scale chunks, so the modulation yields (1 + scale) directly.
    """

    qkv_w: np.ndarray
    qkv_t: np.ndarray
    qkv_b: np.ndarray
    cond_kv_t: np.ndarray
    cond_kv_b: np.ndarray
    proj_w: np.ndarray
    proj_t: np.ndarray
    proj_b: np.ndarray
    fc1_w: np.ndarray
    fc1_t: np.ndarray
    fc1_b: np.ndarray
    fc2_w: np.ndarray
    fc2_t: np.ndarray
    fc2_b: np.ndarray
    mod_t: np.ndarray
    mod_b: np.ndarray


@dataclass
class Condition:
    """Everything computed once per observation.

    Args:
        kv: per block, condition keys transposed (heads, width/heads, K) and values
            (heads, K, width/heads).
        global_c: (width,) global condition vector.
        modulations: per flow time τ, the modulation (`NumpyActionExpert.modulation`), filled
            on first use (a sampler needs each τ once per step).
    """

    kv: list[tuple[np.ndarray, np.ndarray]]
    global_c: np.ndarray
    modulations: dict[float, tuple[list[np.ndarray], np.ndarray]] = field(default_factory=dict)


class NumpyActionExpert:
    """Inference-only numpy twin of `ActionExpert` (batch of one).

    Args:
        config: the model's configuration.
        state_dict: its weights as numpy arrays (keys as in the torch state dict).
        vjp_steps: default of `sample`'s `vjp_steps` (RTC guidance: leading flow steps whose
            guidance back-propagates through the network); -1 = every step (the paper's
            guidance, exact).
    """

    def __init__(self, config: ActionExpertConfig, state_dict: dict[str, np.ndarray], vjp_steps: int = -1) -> None:
        if int(vjp_steps) < -1:
            raise ValueError(f"vjp_steps must be >= -1 (-1 = every flow step), got {vjp_steps}")
        self.config = config
        self.vjp_steps = int(vjp_steps)
        sd = {k: np.ascontiguousarray(np.asarray(v, dtype=np.float32)) for k, v in state_dict.items()}
        w = config.width
        self.heads = config.heads
        self.dh = w // config.heads
        scale = np.float32(1.0 / math.sqrt(self.dh))
        self.cond1_w, self.cond1_b = sd["cond_mlp.0.weight"].T.copy(), sd["cond_mlp.0.bias"]
        self.cond2_w, self.cond2_b = (0.5 * sd["cond_mlp.2.weight"].T).astype(np.float32), sd["cond_mlp.2.bias"]
        self.cond_pos = sd["cond_pos"]
        self.cond_norm_w, self.cond_norm_b = sd["cond_norm.weight"], sd["cond_norm.bias"]
        self.in_w = sd["action_in.weight"]  # (w, D)
        self.in_t = np.ascontiguousarray(self.in_w.T)
        self.in_b_pos = sd["action_in.bias"] + sd["action_pos"]  # (H, w)
        self.t1_w, self.t1_b = sd["time_mlp.0.weight"].T.copy(), sd["time_mlp.0.bias"]
        self.t2_w, self.t2_b = sd["time_mlp.2.weight"].T.copy(), sd["time_mlp.2.bias"]
        self.out_mod_w = sd["out_modulation.weight"].T.copy()
        self.out_mod_b = sd["out_modulation.bias"].copy()
        self.out_mod_b[w:] += 1.0  # (1 + scale)
        self.out_w, self.out_b = sd["action_out.weight"], sd["action_out.bias"]  # (D, w)
        self.out_t = np.ascontiguousarray(self.out_w.T)
        self.blocks = []
        for i in range(config.depth):
            p = f"blocks.{i}."
            qkv_w = sd[p + "qkv.weight"].copy()
            qkv_b = sd[p + "qkv.bias"].copy()
            qkv_w[:w] *= scale
            qkv_b[:w] *= scale
            fc2_w = (0.5 * sd[p + "fc2.weight"]).astype(np.float32)
            mod_b = sd[p + "modulation.bias"].copy()
            mod_b[w : 2 * w] += 1.0
            mod_b[4 * w : 5 * w] += 1.0
            self.blocks.append(_BlockWeights(
                qkv_w=qkv_w, qkv_t=np.ascontiguousarray(qkv_w.T), qkv_b=qkv_b,
                cond_kv_t=np.ascontiguousarray(sd[p + "cond_kv.weight"].T), cond_kv_b=sd[p + "cond_kv.bias"],
                proj_w=sd[p + "proj.weight"], proj_t=np.ascontiguousarray(sd[p + "proj.weight"].T),
                proj_b=sd[p + "proj.bias"],
                fc1_w=sd[p + "fc1.weight"], fc1_t=np.ascontiguousarray(sd[p + "fc1.weight"].T), fc1_b=sd[p + "fc1.bias"],
                fc2_w=fc2_w, fc2_t=np.ascontiguousarray(fc2_w.T), fc2_b=sd[p + "fc2.bias"],
                mod_t=np.ascontiguousarray(sd[p + "modulation.weight"].T), mod_b=mod_b,
            ))
        self._time_cache: dict[float, np.ndarray] = {}

    # ---- condition -------------------------------------------------------------------------------
    def encode_condition(self, features: np.ndarray) -> Condition:
        """Condition of one normalised feature vector (feature_dim,)."""
        cfg = self.config
        f = np.asarray(features, dtype=np.float32).reshape(-1)
        h, _ = _gelu2(f @ self.cond1_w + self.cond1_b)
        out = (h @ self.cond2_w + self.cond2_b).reshape(cfg.cond_tokens + 1, cfg.width)
        xhat, _ = _layer_norm(out[1:] + self.cond_pos)
        tokens = xhat * self.cond_norm_w + self.cond_norm_b
        kv = []
        for blk in self.blocks:
            k, v = np.split(tokens @ blk.cond_kv_t + blk.cond_kv_b, 2, axis=-1)
            kv.append((np.ascontiguousarray(self._heads(k).transpose(0, 2, 1)), np.ascontiguousarray(self._heads(v))))
        return Condition(kv, out[0])

    def _heads(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], self.heads, self.dh).transpose(1, 0, 2)

    def _time(self, tau: float) -> np.ndarray:
        emb = self._time_cache.get(tau)
        if emb is None:
            w = self.config.width
            half = w // 2
            freqs = np.exp(-math.log(100.0) * np.arange(half, dtype=np.float32) / half)
            args = (tau * 1000.0 / 100.0) * freqs
            e = np.concatenate([np.cos(args), np.sin(args)]).astype(np.float32)
            emb = _silu(e @ self.t1_w + self.t1_b) @ self.t2_w + self.t2_b
            self._time_cache[tau] = emb
        return emb

    def modulation(self, cond: Condition, tau: float) -> tuple[list[np.ndarray], np.ndarray]:
        """Per-block (6, width) rows (shift1, 1 + scale1, gate1, shift2, 1 + scale2, gate2) and
        output (2, width) rows (shift, 1 + scale) at flow time `tau` (cached in `cond`)."""
        out = cond.modulations.get(tau)
        if out is None:
            c = _silu(cond.global_c + self._time(tau))
            mods = [(c @ blk.mod_t + blk.mod_b).reshape(6, -1) for blk in self.blocks]
            out = (mods, (c @ self.out_mod_w + self.out_mod_b).reshape(2, -1))
            cond.modulations[tau] = out
        return out

    # ---- velocity and its VJP ------------------------------------------------------------------------
    def velocity(self, x: np.ndarray, cond: Condition, tau: float, keep: bool = False):
        """Flow velocity (H, D) at noisy actions `x` (H, D); with `keep`, also the cache for `vjp`."""
        mods, out_mod = self.modulation(cond, tau)
        x = np.asarray(x, dtype=np.float32)
        h = x @ self.in_t
        h += self.in_b_pos
        caches = []
        n, w = h.shape
        for blk, (kc_t, vc), mod in zip(self.blocks, cond.kv, mods, strict=True):
            sh1, sc1, g1, sh2, sc2, g2 = mod
            xhat1, rstd1 = _layer_norm(h)
            a_in = xhat1 * sc1
            a_in += sh1
            qkv = a_in @ blk.qkv_t
            qkv += blk.qkv_b
            qh = self._heads(qkv[:, :w])
            keys_t = np.concatenate([kc_t, qkv[:, w : 2 * w].reshape(n, self.heads, self.dh).transpose(1, 2, 0)], axis=2)
            vals = np.concatenate([vc, self._heads(qkv[:, 2 * w :])], axis=1)
            p = qh @ keys_t  # (heads, n, K + n), scale folded into the queries
            p -= np.maximum.reduce(p, axis=-1, keepdims=True)
            np.exp(p, out=p)
            p /= _sum(p, axis=-1, keepdims=True)
            o = (p @ vals).transpose(1, 0, 2).reshape(n, w) @ blk.proj_t
            o += blk.proj_b
            o *= g1
            h1 = h + o
            xhat2, rstd2 = _layer_norm(h1)
            m_in = xhat2 * sc2
            m_in += sh2
            u = m_in @ blk.fc1_t
            u += blk.fc1_b
            gu, t = _gelu2(u)
            m = gu @ blk.fc2_t
            m += blk.fc2_b
            m *= g2
            h = h1 + m
            if keep:
                caches.append((xhat1, rstd1, qh, keys_t, vals, p, xhat2, rstd2, u, t, mod))
        xhat_o, rstd_o = _layer_norm(h)
        y = xhat_o * out_mod[1]
        y += out_mod[0]
        vel = y @ self.out_t
        vel += self.out_b
        if keep:
            return vel, (caches, xhat_o, rstd_o, out_mod)
        return vel

    def vjp(self, cache, grad_v: np.ndarray) -> np.ndarray:
        """grad_vᵀ ∂velocity/∂x (H, D) for the `cache` of `velocity(..., keep=True)`."""
        caches, xhat_o, rstd_o, out_mod = cache
        kc_len = self.config.cond_tokens
        n = xhat_o.shape[0]
        w = self.config.width
        g = np.asarray(grad_v, dtype=np.float32) @ self.out_w
        g *= out_mod[1]
        dh = _layer_norm_backward(g, xhat_o, rstd_o)
        dqkv = np.empty((n, 3 * w), dtype=np.float32)
        for blk, (xhat1, rstd1, qh, keys_t, vals, p, xhat2, rstd2, u, t, mod) in zip(
            reversed(self.blocks), reversed(caches), strict=True
        ):
            _, sc1, g1, _, sc2, g2 = mod
            # MLP branch
            du = (g2 * dh) @ blk.fc2_w
            du *= _gelu2_grad(u, t)
            dm = du @ blk.fc1_w
            dm *= sc2
            dh1 = _layer_norm_backward(dm, xhat2, rstd2)
            dh1 += dh
            # attention branch
            do = ((g1 * dh1) @ blk.proj_w).reshape(n, self.heads, self.dh).transpose(1, 0, 2)
            dp = do @ vals.transpose(0, 2, 1)
            dvals = p.transpose(0, 2, 1) @ do
            dp -= _sum(dp * p, axis=-1, keepdims=True)
            dp *= p  # = d(scores)
            dqkv[:, :w].reshape(n, self.heads, self.dh)[...] = (dp @ keys_t.transpose(0, 2, 1)).transpose(1, 0, 2)
            dqkv[:, w : 2 * w].reshape(n, self.heads, self.dh)[...] = (
                (dp[:, :, kc_len:].transpose(0, 2, 1) @ qh).transpose(1, 0, 2))
            dqkv[:, 2 * w :].reshape(n, self.heads, self.dh)[...] = dvals[:, kc_len:].transpose(1, 0, 2)
            da = dqkv @ blk.qkv_w
            da *= sc1
            dh = _layer_norm_backward(da, xhat1, rstd1)
            dh += dh1
        return dh @ self.in_w

    # ---- sampling ------------------------------------------------------------------------------------------
    def sample(
        self,
        features: np.ndarray,
        rng: np.random.Generator,
        steps: int | None = None,
        noise_scale: float = 1.0,
        prefix: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        max_guidance_weight: float = 5.0,
        vjp_steps: int | None = None,
    ) -> np.ndarray:
        """Normalised chunk (H, D) for one normalised feature vector.

        Args:
            features: (feature_dim,) normalised features.
            rng: numpy generator for the initial noise (seeded sampler).
            steps: Euler steps (default `config.flow_steps`).
            noise_scale: std of the initial noise.
            prefix, weights: real-time chunking: committed actions (H, D) in normalised action
                space and per-step weights (H,); None = unguided.
            max_guidance_weight: β, the clip of the guidance gain.
            vjp_steps: RTC guidance is applied at every flow step; in the first `vjp_steps` steps
                it back-propagates through the network (the paper's correction
                eᵀ ∂Â/∂A = e + (1 - τ) eᵀ ∂v/∂A, one vector-Jacobian product each), in the later
                ones it uses ∂Â/∂A ≈ I (correction e: the dropped term is scaled by 1 - τ and
                the step costs no backward pass). -1 = every step (exact paper guidance);
                None = the instance default (`self.vjp_steps`).
        """
        cfg = self.config
        n = int(steps or cfg.flow_steps)
        x = (noise_scale * rng.standard_normal((cfg.horizon, cfg.action_dim))).astype(np.float32)
        cond = self.encode_condition(features)
        dt = 1.0 / n
        guided = prefix is not None and weights is not None and bool(np.any(np.asarray(weights) > 0))
        if guided:
            y = np.asarray(prefix, dtype=np.float32)
            wts = np.asarray(weights, dtype=np.float32)[:, None]
            k_vjp = self.vjp_steps if vjp_steps is None else int(vjp_steps)
            if k_vjp < 0:
                k_vjp = n
        for i in range(n):
            tau = i * dt
            if not guided:
                v = self.velocity(x, cond, tau)
            else:
                if i < k_vjp:
                    v, cache = self.velocity(x, cond, tau, keep=True)
                else:
                    v = self.velocity(x, cond, tau)
                error = (y - (x + (1.0 - tau) * v)) * wts
                if i < k_vjp:
                    # eᵀ ∂(x + (1 - τ) v)/∂x = e + (1 - τ) eᵀ ∂v/∂x
                    correction = error + (1.0 - tau) * self.vjp(cache, error)
                else:
                    correction = error
                v = v + guidance_gain(tau, max_guidance_weight) * correction
            x = x + dt * v
        return x
