"""Learned grounding backends (GroundingDINO, OWLv2, DINOv2, SAM2 via transformers) on TINY
random-initialised configs built in code: the real loading, preprocessing, forward and
post-processing code paths run; the outputs are meaningless (random weights), so the tests
check shapes, types, ranges and plumbing, not accuracy."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from vla_stack.core.grounding.embedders import EMBEDDERS, ObjectCrop  # noqa: E402
from vla_stack.core.grounding.learned import (  # noqa: E402
    Dinov2Embedder,
    GroundingDinoDetector,
    ModelNotAvailable,
    Owlv2Detector,
    Sam2BoxTracker,
    Sam2Segmenter,
    resolve_model_path,
)
from vla_stack.core.grounding.proposals import DETECTORS, Proposal  # noqa: E402
from vla_stack.core.grounding.segmenters import SEGMENTERS  # noqa: E402
from vla_stack.core.grounding.trackers import TRACKERS  # noqa: E402

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "a", "cup", "mug", "kettle", "plate", "the", "photo", "of"]


def _image(h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 90, np.uint8)
    img[40:90, 50:100] = rng.integers(0, 255, (50, 50, 3))
    return img


@pytest.fixture(scope="module")
def tiny_gdino():
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoProcessor,
        SwinConfig,
    )
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    torch.manual_seed(0)
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)})
    ip = GroundingDinoImageProcessorPil(size={"shortest_edge": 96, "longest_edge": 128})
    swin = SwinConfig(window_size=7, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], image_size=98,
                      out_features=["stage2", "stage3", "stage4"], out_indices=[2, 3, 4])
    cfg = GroundingDinoConfig(
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=8, decoder_ffn_dim=8, num_queries=6, num_feature_levels=4, encoder_n_points=2,
        decoder_n_points=2, use_timm_backbone=False, backbone_config=swin, max_text_len=16,
        text_config={"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8,
                     "max_position_embeddings": 32, "model_type": "bert", "vocab_size": len(WORDS)},
    )
    return GroundingDinoForObjectDetection(cfg).eval(), GroundingDinoProcessor(image_processor=ip, tokenizer=tok)


@pytest.fixture(scope="module")
def tiny_owlv2():
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor
    from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

    torch.manual_seed(0)
    vocab = {}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    # OWLv2 masks queries whose first token id is 0: the special tokens must not be id 0.
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    ip = Owlv2ImageProcessorPil(size={"height": 64, "width": 64})
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    cfg = Owlv2Config(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=eos),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=64, patch_size=16),
        projection_dim=16,
    )
    proc = Owlv2Processor(image_processor=ip, tokenizer=tok)
    return Owlv2ForObjectDetection(cfg).eval(), proc


@pytest.fixture(scope="module")
def tiny_dinov2():
    from transformers import Dinov2Config, Dinov2Model
    from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil

    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                       image_size=56, patch_size=14)
    ip = BitImageProcessorPil(size={"shortest_edge": 64}, crop_size={"height": 56, "width": 56})
    return Dinov2Model(cfg).eval(), ip


@pytest.fixture(scope="module")
def tiny_sam2():
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2Model,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    torch.manual_seed(0)
    # Global attention must not sit on a stage's first (pooling) block: blocks [1, 1, 2, 1], global block 3.
    bb = Sam2HieraDetConfig(hidden_size=12, image_size=128, blocks_per_stage=[1, 1, 2, 1],
                            embed_dim_per_stage=[12, 24, 48, 96], num_attention_heads_per_stage=[1, 1, 1, 1],
                            global_attention_blocks=[3], window_size_per_stage=[8, 4, 4, 2])
    vc = Sam2VisionConfig(backbone_config=bb, backbone_channel_list=[96, 48, 24, 12],
                          backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]], fpn_hidden_size=32)
    pc = Sam2PromptEncoderConfig(hidden_size=32, image_size=128, patch_size=16, mask_input_channels=4)
    mc = Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_hidden_layers=1, num_attention_heads=2,
                               iou_head_hidden_dim=32)
    return Sam2Model(Sam2Config(vision_config=vc, prompt_encoder_config=pc, mask_decoder_config=mc, image_size=128)).eval()


def _check_proposals(props, shape):
    h, w = shape
    for p in props:
        assert isinstance(p, Proposal)
        x0, y0, x1, y1 = p.bbox
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert 0.0 <= p.score <= 1.0
        assert p.mask is None


def test_grounding_dino_detects_on_tiny_model(tiny_gdino):
    model, proc = tiny_gdino
    det = GroundingDinoDetector(box_threshold=0.0, text_threshold=0.0, model=model, processor=proc, max_proposals=4)
    img = _image()
    out = det.detect(img, None, None, ["cup", "kettle"])
    assert 1 <= len(out.proposals) <= 4
    _check_proposals(out.proposals, img.shape[:2])
    assert {p.label for p in out.proposals} <= {"cup", "kettle"}
    none = GroundingDinoDetector(box_threshold=1.0, text_threshold=0.0, model=model, processor=proc).detect(img, None, None, ["cup"])
    assert none.proposals == [] and "threshold" in none.reason


def test_grounding_dino_loads_from_a_local_directory(tiny_gdino, tmp_path):
    model, proc = tiny_gdino
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    det = GroundingDinoDetector(model_path=str(tmp_path), box_threshold=0.0, text_threshold=0.0)
    out = det.detect(_image(), None, None, ["mug"])
    _check_proposals(out.proposals, (120, 160))
    # Registry path with the same arguments
    det2 = DETECTORS.create("grounding_dino", model_path=str(tmp_path), box_threshold=0.0, text_threshold=0.0)
    assert isinstance(det2, GroundingDinoDetector)


def test_owlv2_detects_and_rescales_padded_boxes(tiny_owlv2, tmp_path):
    model, proc = tiny_owlv2
    det = Owlv2Detector(threshold=0.0, model=model, processor=proc, max_proposals=5)
    img = _image(100, 180)
    out = det.detect(img, None, None, ["cup", "plate"])
    assert 1 <= len(out.proposals) <= 5
    _check_proposals(out.proposals, img.shape[:2])
    assert {p.label for p in out.proposals} <= {"cup", "plate"}
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    loaded = Owlv2Detector(model_path=str(tmp_path), threshold=0.0)
    _check_proposals(loaded.detect(img, None, None, ["cup"]).proposals, img.shape[:2])


def test_dinov2_embeddings_are_unit_vectors_and_deterministic(tiny_dinov2, tmp_path):
    model, ip = tiny_dinov2
    emb = Dinov2Embedder(model=model, processor=ip, pooling="cls+mean", batch_size=2)
    img = _image()
    mask = np.zeros(img.shape[:2], bool)
    mask[40:90, 50:100] = True
    crops = [ObjectCrop(img[30:100, 40:110], mask[30:100, 40:110]) for _ in range(3)]
    e = emb.embed_crops(crops)
    assert e.shape == (3, 64) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(e[0], e[2], atol=1e-5)
    assert emb.embed_crops([]).shape == (0, 64)
    assert "dinov2" in emb.version and "cls+mean" in emb.version
    model.save_pretrained(tmp_path)
    ip.save_pretrained(tmp_path)
    loaded = EMBEDDERS.create("dinov2", model_path=str(tmp_path))
    np.testing.assert_allclose(loaded.embed(img, mask), Dinov2Embedder(model=model, processor=ip).embed(img, mask), atol=1e-5)


def test_sam2_segments_a_box_and_tracks(tiny_sam2, tmp_path):
    seg = Sam2Segmenter(model=tiny_sam2)
    assert seg.input_size == 128
    img = _image()
    mask, iou = seg.segment_box(img, (50, 40, 100, 90))
    assert mask.shape == img.shape[:2] and mask.dtype == bool
    assert np.isfinite(iou)
    prop = Proposal((50, 40, 100, 90), None, 1.0, "cup")
    assert seg.segment(img, None, None, prop).shape == img.shape[:2]
    tracker = Sam2BoxTracker(segmenter=seg)
    obj = np.zeros(img.shape[:2], bool)
    obj[40:90, 50:100] = True
    tracker.init(img, obj)
    assert tracker.active
    shifted = np.roll(img, 2, axis=1)
    state = tracker.update(shifted)
    assert state.mask.shape == img.shape[:2] and 0.0 <= state.confidence <= 1.0
    tiny_sam2.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}))
    loaded = SEGMENTERS.create("sam2", model_path=str(tmp_path))
    np.testing.assert_allclose(loaded._mean, 0.5)
    assert loaded.segment(img, None, None, prop).shape == img.shape[:2]
    assert isinstance(TRACKERS.create("sam2", segmenter=loaded), Sam2BoxTracker)


def test_missing_weights_name_the_path_and_never_download(tmp_path, monkeypatch):
    monkeypatch.setenv("VLA_STACK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelNotAvailable) as exc:
        resolve_model_path("grounding_dino")
    msg = str(exc.value)
    assert str(tmp_path / "home" / "models" / "grounding-dino-tiny") in msg
    assert "IDEA-Research/grounding-dino-tiny" in msg
    with pytest.raises(ModelNotAvailable) as exc:
        GroundingDinoDetector(model_path=str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in str(exc.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotAvailable, match="without config.json"):
        resolve_model_path("sam2", empty)


def test_learned_pipeline_end_to_end_on_tiny_models(tiny_owlv2, tiny_dinov2, tiny_sam2, tmp_path):
    """Detector, embedder and segmenter all learned; the pipeline plumbing runs and returns a typed result."""
    from vla_stack.core.grounding.memory import PersonalObjectMemory
    from vla_stack.core.grounding.pipeline import GroundingConfig, GroundingFrame, GroundingPipeline

    model, proc = tiny_owlv2
    dmodel, dip = tiny_dinov2
    det = Owlv2Detector(threshold=0.0, model=model, processor=proc, max_proposals=3)
    emb = Dinov2Embedder(model=dmodel, processor=dip)
    seg = Sam2Segmenter(model=tiny_sam2)
    memory = PersonalObjectMemory(tmp_path / "mem")
    img = _image()
    ref_mask = np.zeros(img.shape[:2], bool)
    ref_mask[40:90, 50:100] = True
    memory.enroll("mine", [img], "cup", emb, masks=[ref_mask])
    cfg = GroundingConfig(detector="owlv2", embedder="dinov2", segmenter="sam2", matching={"accept_threshold": -1.0})
    pipe = GroundingPipeline(cfg, memory, detector=det, embedder=emb, segmenter=seg)
    pipe.set_instruction("bring my cup")
    res = pipe.process(GroundingFrame(img))
    assert res.status in ("found", "ambiguous", "not_found")
    assert res.mode == "detect" and res.highlighted.shape == img.shape
    assert len(res.scores) == len(res.objects[0].candidates) >= 1
    assert "detection_s" in res.timings
