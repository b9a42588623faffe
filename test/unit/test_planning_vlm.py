"""VLM planner backend on a tiny random-initialised Qwen2-VL built in code and saved to a
local directory (no weights from a hub): loading, image inputs, JSON parsing, fallback."""

from __future__ import annotations

import string

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from vla_stack.core.planning.backends import OfflinePlanner, PlanningState, PlanRequest  # noqa: E402
from vla_stack.core.planning.backends.vlm import VlmPlanner, VlmPlannerConfig, build_prompt  # noqa: E402

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def build_tiny_qwen2_vl(directory) -> None:
    """Save a ~100 k-parameter Qwen2-VL with a character-level tokenizer and a PIL image processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    vocab = {t: i for i, t in enumerate(SPECIALS + list(string.printable))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", additional_special_tokens=SPECIALS[1:]
    )
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIALS}
    torch.manual_seed(0)
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, rope_parameters={"rope_type": "default", "mrope_section": [2, 1, 1], "rope_theta": 10000.0},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    Qwen2VLForConditionalGeneration(config).eval().save_pretrained(directory)
    tok.save_pretrained(directory)
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112).save_pretrained(directory)


def build_tiny_paligemma(directory) -> None:
    """Save a tiny PaliGemma with its full processor (SigLIP PIL image processor + char tokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    specials = ["<pad>", "<eos>", "<bos>", "<image>"]
    vocab = {t: i for i, t in enumerate(specials + list(string.printable))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", bos_token="<bos>", pad_token="<pad>",
                                  additional_special_tokens=["<image>"])
    torch.manual_seed(0)
    config = PaliGemmaConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                           patch_size=14, projection_dim=32),
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16),
        image_token_index=vocab["<image>"], vocab_size=len(vocab), projection_dim=32, hidden_size=32,
    )
    PaliGemmaForConditionalGeneration(config).eval().save_pretrained(directory)
    image_processor = SiglipImageProcessorPil(size={"height": 28, "width": 28})
    image_processor.image_seq_length = 4  # (28 / 14)^2 patches
    PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(directory)


class ForceText:
    """Logits processor that makes generation emit `token_ids` (then EOS): drives the real
    generate -> decode -> parse path with a known answer, since random weights answer noise."""

    def __init__(self, token_ids: list[int], eos: int) -> None:
        self.ids = list(token_ids) + [eos]
        self.start: int | None = None

    def __call__(self, input_ids, scores):
        if self.start is None:
            self.start = input_ids.shape[1]
        k = min(input_ids.shape[1] - self.start, len(self.ids) - 1)
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.ids[k]] = 0.0
        return forced


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_qwen2_vl")
    build_tiny_qwen2_vl(d)
    return d


@pytest.fixture(scope="module")
def fallback():
    p = OfflinePlanner()
    p.warm_up()
    return p


@pytest.fixture(scope="module")
def vlm(model_dir, fallback):
    return VlmPlanner(VlmPlannerConfig(model_path=str(model_dir), max_new_tokens=24), fallback=fallback)


def test_missing_model_directory_is_a_clear_error(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        VlmPlanner(VlmPlannerConfig(model_path=str(missing)))
    with pytest.raises(FileNotFoundError, match="local directory"):
        VlmPlanner(VlmPlannerConfig(model_path=""))


def test_directory_without_a_model_is_a_clear_error(tmp_path):
    (tmp_path / "README").write_text("not a model")
    with pytest.raises((OSError, ValueError), match=str(tmp_path.name)):
        VlmPlanner(VlmPlannerConfig(model_path=str(tmp_path)))


def test_loads_from_the_local_directory(vlm):
    assert vlm.model_type == "qwen2_vl"
    assert type(vlm.model).__name__ == "Qwen2VLForConditionalGeneration"
    assert vlm.latent_dim == 384


def test_prompt_lists_skills_state_and_instruction():
    text = build_prompt(PlanRequest("bring the red-highlighted cup to the tray",
                                    PlanningState(holding=False, grounding_status="found", history=("pick up the mug",))))
    for needle in ("pick(object", "place(object, target", "hand_over", "holding=no", "target object=found",
                   "pick up the mug", '"bring the red-highlighted cup to the tray"', '{"plan": ['):
        assert needle in text


def test_image_is_fed_as_qwen_vision_tokens(vlm):
    image = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    inputs = vlm.build_inputs(PlanRequest("bring the cup to the tray", image=image))
    assert vlm.last_inputs_had_image
    assert "pixel_values" in inputs and "image_grid_thw" in inputs
    n_pad = int((inputs["input_ids"] == vlm.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum())
    grid = inputs["image_grid_thw"][0]
    assert n_pad == int(grid.prod()) // 4  # one token per 2x2 merged patch
    text_only = vlm.build_inputs(PlanRequest("bring the cup to the tray"))
    assert "pixel_values" not in text_only and not vlm.last_inputs_had_image
    bad = vlm.build_inputs(PlanRequest("bring the cup to the tray", image=np.zeros((4, 4), np.uint8)))
    assert "pixel_values" not in bad  # a malformed image is dropped, not fatal


def test_random_model_output_falls_back_to_the_offline_planner(vlm):
    image = np.full((64, 64, 3), 128, np.uint8)
    result = vlm.plan(PlanRequest("bring the red-highlighted cup to the tray", PlanningState(), image=image))
    assert result.fallback and result.backend == "vlm->offline"
    assert "not a valid plan" in result.reason
    assert result.ok and [s.skill for s in result.subtasks] == ["pick", "place"]


def test_valid_json_from_the_model_becomes_the_plan(model_dir, fallback):
    answer = '{"plan": [{"skill": "pick", "arguments": {"object": "red-highlighted cup"}}, {"skill": "place", "arguments": {"target": "tray"}}]}'
    probe = VlmPlanner(VlmPlannerConfig(model_path=str(model_dir), max_new_tokens=8), fallback=fallback)
    ids = probe.tokenizer(answer, add_special_tokens=False).input_ids
    eos = probe.tokenizer.convert_tokens_to_ids("<|im_end|>")
    planner = VlmPlanner(
        VlmPlannerConfig(model_path=str(model_dir), max_new_tokens=len(ids) + 4), fallback=fallback,
        generation_kwargs={"logits_processor": transformers.LogitsProcessorList([ForceText(ids, eos)])},
    )
    state = PlanningState(grounding_status="found", object_position=(0.5, 0.1, 0.04), frame_id="panda_link0")
    result = planner.plan(PlanRequest("bring the red-highlighted cup to the tray", state))
    assert result.raw_output == answer
    assert result.ok and not result.fallback and result.backend == "vlm"
    pick, place = result.subtasks
    assert pick.arguments["position"] == [0.5, 0.1, 0.04]
    assert place.arguments == {"object": "red-highlighted cup", "target": "tray"}  # object filled from the pick


def test_unknown_skill_from_the_model_falls_back(model_dir, fallback):
    answer = '{"plan": [{"skill": "teleport", "arguments": {}}]}'
    probe = VlmPlanner(VlmPlannerConfig(model_path=str(model_dir), max_new_tokens=8), fallback=fallback)
    ids = probe.tokenizer(answer, add_special_tokens=False).input_ids
    eos = probe.tokenizer.convert_tokens_to_ids("<|im_end|>")
    planner = VlmPlanner(
        VlmPlannerConfig(model_path=str(model_dir), max_new_tokens=len(ids) + 4), fallback=fallback,
        generation_kwargs={"logits_processor": transformers.LogitsProcessorList([ForceText(ids, eos)])},
    )
    result = planner.plan(PlanRequest("bring my cup to the tray"))
    assert result.fallback and "unknown skill 'teleport'" in result.reason
    assert [s.skill for s in result.subtasks] == ["pick", "place"]


def test_garbage_instruction_is_rejected_without_running_the_model(vlm):
    result = vlm.plan(PlanRequest("\x00\x01\x02"))
    assert not result.ok and "control characters" in result.reason


def test_paligemma_goes_through_its_full_processor(tmp_path, fallback):
    build_tiny_paligemma(tmp_path)
    planner = VlmPlanner(VlmPlannerConfig(model_path=str(tmp_path), max_new_tokens=12), fallback=fallback)
    assert planner.model_type == "paligemma" and planner.processor is not None
    image = np.zeros((40, 40, 3), np.uint8)
    inputs = planner.build_inputs(PlanRequest("bring the cup to the tray", image=image))
    assert planner.last_inputs_had_image and inputs["pixel_values"].shape == (1, 3, 28, 28)
    n_image_tokens = int((inputs["input_ids"] == planner.model_config.image_token_index).sum())
    assert n_image_tokens == 4
    result = planner.plan(PlanRequest("bring the cup to the tray", image=image))
    assert result.fallback and result.ok and [s.skill for s in result.subtasks] == ["pick", "place"]
