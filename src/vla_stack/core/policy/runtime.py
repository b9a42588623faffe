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

import math
from dataclasses import dataclass

import numpy as np

from vla_stack.core.policy.model import ActionExpertConfig
from vla_stack.core.policy.rtc import guidance_gain

_GELU_C = math.sqrt(2.0 / math.pi)
_EPS = 1e-6


_sum = np.add.reduce  # ndarray.mean() costs ~10x more Python overhead than the arithmetic here


def _layer_norm(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    inv_n = 1.0 / x.shape[-1]
    xc = x - _sum(x, axis=-1, keepdims=True) * inv_n
    rstd = 1.0 / np.sqrt(_sum(xc * xc, axis=-1, keepdims=True) * inv_n + _EPS)
    return xc * rstd, rstd


def _layer_norm_backward(dxhat: np.ndarray, xhat: np.ndarray, rstd: np.ndarray) -> np.ndarray:
    inv_n = 1.0 / dxhat.shape[-1]
    return rstd * (dxhat - _sum(dxhat, axis=-1, keepdims=True) * inv_n
                   - xhat * (_sum(dxhat * xhat, axis=-1, keepdims=True) * inv_n))


def _silu(x: np.ndarray) -> np.ndarray:
    return x * (0.5 + 0.5 * np.tanh(0.5 * x))  # = x · sigmoid(x), without overflow


def _gelu(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.tanh(_GELU_C * (u + 0.044715 * (u * u * u)))
    return 0.5 * u * (1.0 + t), t


def _gelu_grad(u: np.ndarray, t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + t) + 0.5 * u * (1.0 - t * t) * _GELU_C * (1.0 + 3 * 0.044715 * u * u)


@dataclass
class _BlockWeights:
    """Weights of one block; `*_t` are transposed copies (in, out) for the forward pass,
    the untransposed (out, in) ones serve the backward pass (contiguous either way: BLAS on a
    transposed view is several times slower at these sizes)."""

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
        kv: per block, condition keys and values (heads, K, width/heads).
        global_c: (width,) global condition vector.
    """

    kv: list[tuple[np.ndarray, np.ndarray]]
    global_c: np.ndarray


class NumpyActionExpert:
    """Inference-only numpy twin of `ActionExpert` (batch of one).

    Args:
        config: the model's configuration.
        state_dict: its weights as numpy arrays (keys as in the torch state dict).
    """

    def __init__(self, config: ActionExpertConfig, state_dict: dict[str, np.ndarray]) -> None:
        self.config = config
        sd = {k: np.ascontiguousarray(np.asarray(v, dtype=np.float32)) for k, v in state_dict.items()}
        self.heads = config.heads
        self.dh = config.width // config.heads
        self.scale = 1.0 / math.sqrt(self.dh)
        self.cond1_w, self.cond1_b = sd["cond_mlp.0.weight"].T.copy(), sd["cond_mlp.0.bias"]
        self.cond2_w, self.cond2_b = sd["cond_mlp.2.weight"].T.copy(), sd["cond_mlp.2.bias"]
        self.cond_pos = sd["cond_pos"]
        self.cond_norm_w, self.cond_norm_b = sd["cond_norm.weight"], sd["cond_norm.bias"]
        self.in_w, self.in_b = sd["action_in.weight"], sd["action_in.bias"]  # (w, D)
        self.in_t = np.ascontiguousarray(self.in_w.T)
        self.pos = sd["action_pos"]
        self.t1_w, self.t1_b = sd["time_mlp.0.weight"].T.copy(), sd["time_mlp.0.bias"]
        self.t2_w, self.t2_b = sd["time_mlp.2.weight"].T.copy(), sd["time_mlp.2.bias"]
        self.out_mod_w, self.out_mod_b = sd["out_modulation.weight"].T.copy(), sd["out_modulation.bias"]
        self.out_w, self.out_b = sd["action_out.weight"], sd["action_out.bias"]  # (D, w)
        self.out_t = np.ascontiguousarray(self.out_w.T)
        self.blocks = []
        for i in range(config.depth):
            p = f"blocks.{i}."

            def t(name: str, p: str = p) -> np.ndarray:
                return np.ascontiguousarray(sd[p + name].T)

            self.blocks.append(_BlockWeights(
                qkv_w=sd[p + "qkv.weight"], qkv_t=t("qkv.weight"), qkv_b=sd[p + "qkv.bias"],
                cond_kv_t=t("cond_kv.weight"), cond_kv_b=sd[p + "cond_kv.bias"],
                proj_w=sd[p + "proj.weight"], proj_t=t("proj.weight"), proj_b=sd[p + "proj.bias"],
                fc1_w=sd[p + "fc1.weight"], fc1_t=t("fc1.weight"), fc1_b=sd[p + "fc1.bias"],
                fc2_w=sd[p + "fc2.weight"], fc2_t=t("fc2.weight"), fc2_b=sd[p + "fc2.bias"],
                mod_t=t("modulation.weight"), mod_b=sd[p + "modulation.bias"],
            ))
        self._time_cache: dict[float, np.ndarray] = {}

    # ---- condition -------------------------------------------------------------------------------
    def encode_condition(self, features: np.ndarray) -> Condition:
        """Condition of one normalised feature vector (feature_dim,)."""
        cfg = self.config
        f = np.asarray(features, dtype=np.float32).reshape(-1)
        h, _ = _gelu(f @ self.cond1_w + self.cond1_b)
        out = (h @ self.cond2_w + self.cond2_b).reshape(cfg.cond_tokens + 1, cfg.width)
        xhat, _ = _layer_norm(out[1:] + self.cond_pos)
        tokens = xhat * self.cond_norm_w + self.cond_norm_b
        kv = []
        for blk in self.blocks:
            k, v = np.split(tokens @ blk.cond_kv_t + blk.cond_kv_b, 2, axis=-1)
            kv.append((self._heads(k), self._heads(v)))
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
        """Per-block (6, width) and output (2, width) modulation at flow time `tau`."""
        c = _silu(cond.global_c + self._time(tau))
        mods = [(c @ blk.mod_t + blk.mod_b).reshape(6, -1) for blk in self.blocks]
        return mods, (c @ self.out_mod_w + self.out_mod_b).reshape(2, -1)

    # ---- velocity and its VJP ------------------------------------------------------------------------
    def velocity(self, x: np.ndarray, cond: Condition, tau: float, keep: bool = False):
        """Flow velocity (H, D) at noisy actions `x` (H, D); with `keep`, also the cache for `vjp`."""
        mods, out_mod = self.modulation(cond, tau)
        x = np.asarray(x, dtype=np.float32)
        h = x @ self.in_t + self.in_b + self.pos
        caches = []
        n, w = h.shape
        for blk, (kc, vc), mod in zip(self.blocks, cond.kv, mods, strict=True):
            sh1, sc1, g1, sh2, sc2, g2 = mod
            xhat1, rstd1 = _layer_norm(h)
            a_in = xhat1 * (1.0 + sc1) + sh1
            qkv = a_in @ blk.qkv_t + blk.qkv_b
            q, k, v = qkv[:, :w], qkv[:, w : 2 * w], qkv[:, 2 * w :]
            qh = self._heads(q)
            keys = np.concatenate([kc, self._heads(k)], axis=1)
            vals = np.concatenate([vc, self._heads(v)], axis=1)
            s = (qh @ keys.transpose(0, 2, 1)) * self.scale
            p = np.exp(s - np.maximum.reduce(s, axis=-1, keepdims=True))
            p /= _sum(p, axis=-1, keepdims=True)
            o = (p @ vals).transpose(1, 0, 2).reshape(n, w)
            h1 = h + g1 * (o @ blk.proj_t + blk.proj_b)
            xhat2, rstd2 = _layer_norm(h1)
            m_in = xhat2 * (1.0 + sc2) + sh2
            u = m_in @ blk.fc1_t + blk.fc1_b
            gu, t = _gelu(u)
            h = h1 + g2 * (gu @ blk.fc2_t + blk.fc2_b)
            if keep:
                caches.append((xhat1, rstd1, qh, keys, vals, p, xhat2, rstd2, u, t, mod))
        xhat_o, rstd_o = _layer_norm(h)
        vel = (xhat_o * (1.0 + out_mod[1]) + out_mod[0]) @ self.out_t + self.out_b
        if keep:
            return vel, (caches, xhat_o, rstd_o, out_mod)
        return vel

    def vjp(self, cache, grad_v: np.ndarray) -> np.ndarray:
        """grad_vᵀ ∂velocity/∂x (H, D) for the `cache` of `velocity(..., keep=True)`."""
        caches, xhat_o, rstd_o, out_mod = cache
        kc_len = self.config.cond_tokens
        n = xhat_o.shape[0]
        w = self.config.width
        dh = _layer_norm_backward((np.asarray(grad_v, dtype=np.float32) @ self.out_w) * (1.0 + out_mod[1]), xhat_o, rstd_o)
        for blk, (xhat1, rstd1, qh, keys, vals, p, xhat2, rstd2, u, t, mod) in zip(
            reversed(self.blocks), reversed(caches), strict=True
        ):
            _, sc1, g1, _, sc2, g2 = mod
            # MLP branch
            du = ((g2 * dh) @ blk.fc2_w) * _gelu_grad(u, t)
            dh1 = dh + _layer_norm_backward((du @ blk.fc1_w) * (1.0 + sc2), xhat2, rstd2)
            # attention branch
            do = ((g1 * dh1) @ blk.proj_w).reshape(n, self.heads, self.dh).transpose(1, 0, 2)
            dp = do @ vals.transpose(0, 2, 1)
            dvals = p.transpose(0, 2, 1) @ do
            ds = p * (dp - _sum(dp * p, axis=-1, keepdims=True)) * self.scale
            dq = ds @ keys
            dkeys = ds.transpose(0, 2, 1) @ qh
            dqkv = np.concatenate([
                dq.transpose(1, 0, 2).reshape(n, w),
                dkeys[:, kc_len:].transpose(1, 0, 2).reshape(n, w),
                dvals[:, kc_len:].transpose(1, 0, 2).reshape(n, w),
            ], axis=-1)
            dh = dh1 + _layer_norm_backward((dqkv @ blk.qkv_w) * (1.0 + sc1), xhat1, rstd1)
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
        for i in range(n):
            tau = i * dt
            if not guided:
                v = self.velocity(x, cond, tau)
            else:
                v, cache = self.velocity(x, cond, tau, keep=True)
                error = (y - (x + (1.0 - tau) * v)) * wts
                # eᵀ ∂(x + (1 - τ) v)/∂x = e + (1 - τ) eᵀ ∂v/∂x
                correction = error + (1.0 - tau) * self.vjp(cache, error)
                v = v + guidance_gain(tau, max_guidance_weight) * correction
            x = x + dt * v
        return x
