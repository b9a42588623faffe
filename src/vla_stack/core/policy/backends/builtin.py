"""The built-in action expert as a `Policy`: checkpoint -> numpy runtime -> ActionChunk.

Inference runs in numpy (`runtime.py`): about half a millisecond per flow step for the shipped
model on one CPU core, torch is not needed at run time. Real-time chunking guidance is
supported (`metadata.supports_guidance`); by default without a backward pass through the
network (`BuiltinExpertConfig.guidance_vjp_steps`, see `rtc.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from vla_stack.core.kinematics.robot_model import RobotModel
from vla_stack.core.policy.backends import POLICIES
from vla_stack.core.policy.checkpoint import load_checkpoint
from vla_stack.core.policy.features import ObservationEncoder
from vla_stack.core.policy.runtime import NumpyActionExpert
from vla_stack.core.policy.types import (
    LATENT_DIM,
    Guidance,
    Observation,
    PolicyError,
    PolicyMetadata,
    actions_to_chunk,
)
from vla_stack.core.robot_profile import RobotProfile, load_robot_profile
from vla_stack.core.types import ActionChunk


@dataclass(frozen=True)
class BuiltinExpertConfig:
    """Settings of the built-in expert backend."""

    checkpoint: str = field(default="", metadata={"help": "checkpoint directory; empty = the one shipped with the package"})
    seed: int = field(default=0, metadata={"help": "seed of the flow sampler (reset() restarts the sequence)"})
    flow_steps: int = field(default=0, metadata={"help": "Euler steps of the sampler; 0 = the checkpoint's (10)"})
    noise_scale: float = field(default=1.0, metadata={"help": "std of the sampler's initial noise (1 = as trained)"})
    max_prefix_deviation: float = field(
        default=50.0,
        metadata={"help": "RTC guidance is skipped when the committed prefix lies more than this many training "
                          "standard deviations from what the expert could produce from the current state (the robot "
                          "is not following its plan: blocked, lagging, or the plan came from elsewhere)"},
    )
    max_action_magnitude: float = field(
        default=25.0, metadata={"help": "a sampled chunk beyond this many standard deviations is discarded (numerical failsafe)"}
    )
    guidance_vjp_steps: int = field(
        default=0,
        metadata={"help": "RTC guidance is applied at every flow step; in the first this many steps its correction "
                          "back-propagates through the network (the paper's vector-Jacobian product), in the rest it "
                          "uses the identity Jacobian (drops a term scaled by 1 - τ, no backward pass). 0 = never "
                          "(default: guided chunks cost about as much as unguided ones; prefix tolerance and closed-loop "
                          "results at 8 steps of delay as good or better, see bench/results/expert.json); -1 = every "
                          "step (the paper's full guidance, about twice the cost)"},
    )

    def __post_init__(self) -> None:
        if self.flow_steps < 0:
            raise ValueError(f"flow_steps must be >= 0, got {self.flow_steps}")
        if not 0.0 <= self.noise_scale <= 2.0:
            raise ValueError(f"noise_scale must be in [0, 2], got {self.noise_scale}")
        if not (self.max_prefix_deviation > 0 and self.max_action_magnitude > 0):
            raise ValueError("max_prefix_deviation and max_action_magnitude must be > 0")
        if self.guidance_vjp_steps < -1:
            raise ValueError(f"guidance_vjp_steps must be >= -1 (-1 = every flow step), got {self.guidance_vjp_steps}")


@POLICIES.register("builtin", config=BuiltinExpertConfig)
class BuiltinExpertPolicy:
    """The flow-matching expert (see `model.py`) behind the `Policy` protocol.

    Args:
        config: backend settings (checkpoint, sampler seed, flow steps).
        profile: the robot it runs on (None = the default robot profile); a checkpoint
            trained for another robot is refused (`CheckpointError`).

    Not thread-safe: call `infer` from one thread at a time.
    """

    def __init__(self, config: BuiltinExpertConfig | None = None, profile: RobotProfile | None = None,
                 **kwargs) -> None:
        self.config = config or BuiltinExpertConfig(**kwargs)
        self.profile = profile = profile or load_robot_profile()
        ckpt = load_checkpoint(self.config.checkpoint or None, profile)
        self.checkpoint = ckpt
        self.runtime = NumpyActionExpert(ckpt.config, ckpt.weights, vjp_steps=self.config.guidance_vjp_steps)
        self.encoder = ObservationEncoder(RobotModel.from_profile(profile), latent_projection=ckpt.latent_projection)
        self.flow_steps = self.config.flow_steps or ckpt.config.flow_steps
        self.metadata = PolicyMetadata.for_robot(profile, name="builtin", horizon=ckpt.config.horizon,
                                                 control_period=ckpt.config.control_period, supports_guidance=True)
        self.latent_table = ckpt.latent_table
        self.guidance_skipped = 0
        self.last_guidance_skipped = ""
        self.latent_rejected = 0
        self.last_latent_rejected = ""
        self.reset()

    def reset(self) -> None:
        """Restart the sampler's random sequence from the configured seed."""
        self._rng = np.random.default_rng(self.config.seed)

    def infer(self, observation: Observation, guidance: Guidance | None = None) -> ActionChunk:
        """Chunk of H targets for `observation`; with `guidance`, inpainted to its prefix (RTC).

        Raises:
            PolicyError("bad_observation") if `observation` is not an Observation;
            PolicyError("bad_guidance") if the guidance does not match the horizon/actions.
        """
        if not isinstance(observation, Observation):
            raise PolicyError("bad_observation", f"expected an Observation, got {type(observation).__name__}")
        try:
            raw = self.encoder.encode(observation)
        except ValueError as exc:  # a planner latent this checkpoint cannot read: act without it
            self.latent_rejected += 1
            self.last_latent_rejected = f"planner latent ignored: {exc}"
            observation = replace(observation, planner_latent=np.zeros(LATENT_DIM), subtask_id=observation.subtask_id)
            raw = self.encoder.encode(observation)
        feats = self.checkpoint.features(raw)
        prefix = weights = None
        max_w = 5.0
        self.last_guidance_skipped = ""
        if guidance is not None:
            h, d = self.metadata.horizon, self.metadata.action_dim
            if guidance.prefix.shape != (h, d):
                raise PolicyError("bad_guidance", f"guidance prefix must be ({h}, {d}), got {guidance.prefix.shape}")
            prefix = self.checkpoint.actions.normalize(guidance.prefix[None], observation.arm_positions[None])[0]
            weights, max_w = guidance.weights, guidance.max_guidance_weight
            deviation = float(np.abs(prefix[weights > 0]).max()) if np.any(weights > 0) else 0.0
            if deviation > self.config.max_prefix_deviation:
                # inpainting towards a plan the robot is not following would drag the sampler
                # far outside its training distribution (and can diverge): plan afresh instead
                self.guidance_skipped += 1
                self.last_guidance_skipped = (f"committed prefix is {deviation:.1f} std from the current state "
                                              f"(> {self.config.max_prefix_deviation}): sampled without guidance")
                prefix = weights = None
        normalized = self.runtime.sample(feats, self._rng, steps=self.flow_steps, noise_scale=self.config.noise_scale,
                                         prefix=prefix, weights=weights, max_guidance_weight=max_w)
        if prefix is not None and not self._plausible(normalized):
            # the guidance pushed the sampler off its distribution (it can diverge): plan afresh
            self.guidance_skipped += 1
            self.last_guidance_skipped = "guided sample diverged: sampled again without guidance"
            normalized = self.runtime.sample(feats, self._rng, steps=self.flow_steps, noise_scale=self.config.noise_scale)
        if not self._plausible(normalized):
            raise PolicyError("diverged", "the expert's sampled chunk is non-finite or implausibly large; chunk discarded")
        actions = self.checkpoint.actions.denormalize(normalized[None], observation.arm_positions[None])[0]
        n = len(self.metadata.arm_joints)
        actions[:, :n] = self.encoder.model.clip(actions[:, :n])  # never a target outside the joint limits
        return actions_to_chunk(actions, observation.stamp, self.metadata)

    def _plausible(self, normalized: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(normalized)) and np.abs(normalized).max() <= self.config.max_action_magnitude)

    def planner_latent(self, subtask_id: int) -> np.ndarray:
        """The synthetic planner latent the expert was trained with for `subtask_id` (for
        evaluation without a real planner)."""
        return self.latent_table[int(subtask_id)].astype(np.float64)
