"""VLM planner: an image-text-to-text model (Qwen2-VL / Qwen2.5-VL, SmolVLM, PaliGemma, ...)
loaded through transformers from a local directory, asked for a JSON plan.

- Loading: `AutoModelForImageTextToText.from_pretrained(model_path, local_files_only=True)`;
  nothing is downloaded. A missing directory raises FileNotFoundError naming the path.
- Inputs: a prompt listing the skill set, the robot state and the instruction, plus the
  grounding image (the personal object highlighted) when there is one and `use_image` is set.
  The full processor (`AutoProcessor`) is used when it loads. Where it does not (processors
  whose video part needs torchvision, which does not import beside torch 2.13 here), the
  tokenizer and image processor are used directly: Qwen2-VL-family prompts get their
  `<|image_pad|>` run expanded to the image grid (what the processor would do); other
  families fall back to a text-only prompt, logged once.
- Output: parsed by `parsing.parse_plan_text`; slots the model left out are filled from the
  instruction; when the output is not a valid plan (no JSON, unknown skill, bad argument) the
  offline planner plans instead and the result says why (`fallback=True`).
- Latent: the offline planner's sentence embedding, so the fast policy sees the same latent
  space whichever backend plans.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_stack.core.planning.backends.base import (
    PLANNERS,
    PlannerBackend,
    PlanRequest,
    PlanResult,
    attach_grounding,
    complete_arguments,
)
from vla_stack.core.planning.backends.offline import OfflinePlanner, OfflinePlannerConfig
from vla_stack.core.planning.parsing import PlanParseError, parse_plan_text
from vla_stack.core.planning.skills import SKILLS, Subtask
from vla_stack.core.planning.text import check_instruction_text, extract_slots

log = logging.getLogger(__name__)

QWEN_VL_TYPES = ("qwen2_vl", "qwen2_5_vl")
"""Model types whose image tokens this module can expand without the full processor."""

PROMPT_TEMPLATE = """You are the task planner of a robot arm with a parallel gripper.
Break the instruction into steps using only these skills:
{skills}
Robot state: {state}
Instruction: "{instruction}"
Answer with JSON only, in this form:
{{"plan": [{{"skill": "pick", "arguments": {{"object": "cup"}}}}, {{"skill": "place", "arguments": {{"object": "cup", "target": "tray"}}}}]}}"""


@dataclass
class VlmPlannerConfig:
    """Settings of the VLM planner."""

    model_path: str = field(default="", metadata={"help": "local directory of the model (config.json, weights, tokenizer)"})
    max_new_tokens: int = field(default=160, metadata={"help": "longest answer, tokens"})
    use_image: bool = field(default=True, metadata={"help": "send the grounding image with the prompt"})
    dtype: str = field(default="float32", metadata={"help": "weights dtype: float32 | bfloat16 | float16"})
    device: str = field(default="cpu", metadata={"help": "torch device"})
    max_image_side: int = field(default=448, metadata={"help": "images are downscaled so their longer side is at most this, px"})
    fallback: OfflinePlannerConfig = field(
        default_factory=OfflinePlannerConfig,
        metadata={"help": "offline planner used when the output is not a valid plan (a node passes its own "
                          "offline planner, configured by offline.*)", "parameter": False}
    )

    def __post_init__(self) -> None:
        if isinstance(self.fallback, dict):
            self.fallback = OfflinePlannerConfig(**self.fallback)
        if not 8 <= self.max_new_tokens <= 4096:
            raise ValueError(f"max_new_tokens must be 8..4096, got {self.max_new_tokens}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if not 28 <= self.max_image_side <= 4096:
            raise ValueError(f"max_image_side must be 28..4096 px, got {self.max_image_side}")


def skill_lines() -> str:
    """The skill set as prompt lines ("- pick(object): grasp OBJECT and lift it")."""
    lines = []
    for spec in SKILLS.values():
        args = ", ".join((*spec.required, *(o for o in spec.optional if o not in ("position", "frame_id"))))
        lines.append(f"- {spec.name}({args}): {spec.summary}")
    return "\n".join(lines)


def build_prompt(request: PlanRequest) -> str:
    """The text prompt of a planning request (skills, state, instruction, JSON form)."""
    st = request.state
    parts = [f"holding={'yes' if st.holding else 'no'}"]
    if st.held_object:
        parts.append(f"held object={st.held_object}")
    if st.grounding_status:
        parts.append(f"target object={st.grounding_status.replace('_', ' ')}")
    if st.history:
        parts.append("done recently: " + "; ".join(st.history[-5:]))
    return PROMPT_TEMPLATE.format(skills=skill_lines(), state=", ".join(parts), instruction=request.instruction.strip())


@PLANNERS.register("vlm", config=VlmPlannerConfig)
class VlmPlanner(PlannerBackend):
    """JSON planning with a local image-text-to-text model (see the module docstring).

    Args:
        config: settings (`model_path` is required).
        fallback: offline planner for invalid output and for the latent (default: built from
            `config.fallback`).
        generation_kwargs: extra keyword arguments of `model.generate` (e.g. a logits processor).

    Raises:
        FileNotFoundError: `model_path` is empty or not a directory.
        ImportError: torch/transformers missing.
        OSError/ValueError: transformers cannot load the directory (message names it).
    """

    name = "vlm"

    def __init__(
        self,
        config: VlmPlannerConfig | None = None,
        fallback: OfflinePlanner | None = None,
        generation_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.config = config or VlmPlannerConfig()
        path = Path(self.config.model_path).expanduser() if self.config.model_path else None
        if path is None or not path.is_dir():
            raise FileNotFoundError(
                f"VLM planner: model directory not found: '{self.config.model_path}'. The vlm backend loads "
                "only from a local directory (config.json, weights, tokenizer); download the model on a "
                "machine with network access and copy it there, or use backend 'offline'."
            )
        self.path = path
        self.fallback = fallback or OfflinePlanner(self.config.fallback)
        self.generation_kwargs = dict(generation_kwargs or {})
        try:
            import torch
            from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer
        except ImportError as exc:
            raise ImportError("the vlm planner needs torch and transformers (pip install torch transformers)") from exc
        self._torch = torch
        dtype = getattr(torch, self.config.dtype)
        try:
            self.model_config = AutoConfig.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModelForImageTextToText.from_pretrained(str(path), local_files_only=True, dtype=dtype)
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise type(exc)(f"VLM planner: cannot load the model in {path}: {exc}") from exc
        self.model.to(self.config.device).eval()
        self.model_type = str(getattr(self.model_config, "model_type", ""))
        self.processor = None
        self.image_processor = None
        try:
            from transformers import AutoProcessor

            self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means: assemble inputs ourselves
            log.info("VLM planner: full processor unavailable (%s); using tokenizer + image processor", str(exc).splitlines()[0][:120])
            try:
                from transformers import AutoImageProcessor

                self.image_processor = AutoImageProcessor.from_pretrained(str(path), local_files_only=True)
            except Exception as exc2:  # noqa: BLE001
                log.info("VLM planner: no image processor in %s (%s): text-only prompts", path, str(exc2)[:120])
        self._warned_text_only = False
        self.last_inputs_had_image = False

    @property
    def latent_dim(self) -> int:  # type: ignore[override]
        return self.fallback.latent_dim

    def latent(self, instruction: str, subtask: Subtask | None) -> np.ndarray:
        """Same latent as the offline planner (sentence embedding of instruction + step)."""
        return self.fallback.latent(instruction, subtask)

    # -- inputs -----------------------------------------------------------------------------
    def _chat_text(self, prompt: str, image_marker: str) -> str:
        """Prompt in the model's chat format (tokenizer template when it has one)."""
        template = getattr(self.tokenizer, "chat_template", None)
        if template:
            content = f"{image_marker}{prompt}"
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
        if self.model_type in QWEN_VL_TYPES:
            return f"<|im_start|>user\n{image_marker}{prompt}<|im_end|>\n<|im_start|>assistant\n"
        return f"{image_marker}{prompt}\n"

    def _image(self, image: np.ndarray):
        from PIL import Image

        img = Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8))
        side = max(img.size)
        if side > self.config.max_image_side:
            scale = self.config.max_image_side / side
            img = img.resize((max(28, int(img.width * scale)), max(28, int(img.height * scale))))
        return img

    def build_inputs(self, request: PlanRequest) -> dict[str, Any]:
        """Model inputs (token ids, and pixel values when the image is used)."""
        prompt = build_prompt(request)
        image = request.image if (self.config.use_image and request.image is not None) else None
        if image is not None and (image.ndim != 3 or image.shape[2] < 3 or image.size == 0):
            log.warning("VLM planner: image of shape %s ignored (need H x W x 3 RGB)", getattr(image, "shape", None))
            image = None
        self.last_inputs_had_image = False
        if image is not None and self.processor is not None:
            if getattr(self.processor, "chat_template", None):
                messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
                text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
            else:  # e.g. PaliGemma: plain prompt after the image token(s); the processor expands them
                text = f"{getattr(self.processor, 'image_token', '')}{prompt}"
            inputs = dict(self.processor(text=[text], images=[self._image(image)], return_tensors="pt"))
            inputs.pop("labels", None)  # training targets some processors add; not for generation
            self.last_inputs_had_image = True
            return inputs
        if image is not None and self.image_processor is not None and self.model_type in QWEN_VL_TYPES:
            pixels = self.image_processor(images=[self._image(image)], return_tensors="pt")
            merge = int(getattr(self.image_processor, "merge_size", 2))
            n_tokens = int(pixels["image_grid_thw"][0].prod()) // (merge * merge)
            text = self._chat_text(prompt, "<|vision_start|><|image_pad|><|vision_end|>")
            text = text.replace("<|image_pad|>", "<|image_pad|>" * n_tokens, 1)
            inputs = dict(self.tokenizer(text, return_tensors="pt"))
            inputs["pixel_values"] = pixels["pixel_values"]
            inputs["image_grid_thw"] = pixels["image_grid_thw"]
            self.last_inputs_had_image = True
            return inputs
        if image is not None and not self._warned_text_only:
            log.warning(
                "VLM planner: cannot feed images to a '%s' model without its full processor (needs torchvision); "
                "planning from text only", self.model_type,
            )
            self._warned_text_only = True
        text = self._chat_text(prompt, "")
        return dict(self.tokenizer(text, return_tensors="pt"))

    def generate_text(self, request: PlanRequest) -> str:
        """The model's raw answer to `request` (greedy decoding)."""
        inputs = {k: (v.to(self.config.device) if hasattr(v, "to") else v) for k, v in self.build_inputs(request).items()}
        with self._torch.inference_mode():
            out = self.model.generate(
                **inputs, max_new_tokens=self.config.max_new_tokens, do_sample=False, **self.generation_kwargs
            )
        new_tokens = out[0, inputs["input_ids"].shape[1]:]
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True)

    # -- planning ---------------------------------------------------------------------------
    def plan(self, request: PlanRequest) -> PlanResult:
        """Ask the model; parse; fall back to the offline planner when the answer is not a valid plan."""
        reason = check_instruction_text(request.instruction)
        if reason is not None:
            return PlanResult(False, reason=reason, backend=self.name)
        t0 = time.perf_counter()
        try:
            raw = self.generate_text(request)
        except Exception as exc:  # noqa: BLE001 - a model error must not kill the planner
            log.error("VLM planner: generation failed (%s); using the offline planner", exc)
            return self._fallback(request, f"generation failed: {exc}", "", t0)
        gen_ms = 1000 * (time.perf_counter() - t0)
        try:
            steps = parse_plan_text(raw)
            slots = extract_slots(request.instruction)
            subtasks = complete_arguments(steps, slots, request.instruction.strip())
        except (PlanParseError, ValueError) as exc:
            return self._fallback(request, f"model output is not a valid plan: {exc}", raw, t0)
        subtasks = attach_grounding(subtasks, request.state)
        return PlanResult(
            True, subtasks, reason=f"vlm ({self.model_type}) plan", backend=self.name,
            scores={"generate_ms": round(gen_ms, 1), "image": self.last_inputs_had_image}, raw_output=raw,
        )

    def _fallback(self, request: PlanRequest, why: str, raw: str, t0: float) -> PlanResult:
        result = self.fallback.plan(request)
        result.fallback = True
        result.raw_output = raw
        result.backend = f"{self.name}->offline"
        result.reason = f"{why}; offline planner: {result.reason}"
        result.scores = {**result.scores, "vlm_ms": round(1000 * (time.perf_counter() - t0), 1)}
        log.warning("VLM planner: %s (raw output %s)", why, json.dumps(raw[:120]))
        return result
