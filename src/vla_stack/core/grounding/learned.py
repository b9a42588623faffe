"""Learned grounding backends through `transformers`: GroundingDINO and OWLv2 (open-vocabulary
proposals), DINOv2 (instance embeddings), SAM2 (box-prompted masks and box tracking).

Weights are never downloaded. A backend loads from `model_path` when it is a directory, else
from `<data_home>/models/<default name>` (`~/.vla_stack/models/...`, see `vla_stack.paths`),
else from the local Hugging Face cache (hub id, `local_files_only=True`). When none has the
files, `ModelNotAvailable` says exactly where to put them.

torchvision does not import beside torch 2.13 here, so the torchvision-based ("fast") image
processors are avoided: GroundingDINO, OWLv2 and DINOv2 use their PIL image processors
(`AutoImageProcessor(..., backend="pil")`), and SAM2's preprocessing (resize to the model's
square input, ImageNet normalisation, box rescaling, mask upsampling) is done here in torch.

Every class also accepts ready `model=` / `processor=` objects, which is how the tests run the
real forward and post-processing code on tiny random-initialised configs built in code.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vla_stack.core.grounding.embedders import Embedder, ObjectCrop
from vla_stack.core.grounding.imageops import BBox, check_rgb, clip_bbox, mask_bbox
from vla_stack.core.grounding.proposals import Detections, Detector, Proposal
from vla_stack.core.grounding.segmenters import Segmenter, clean_mask
from vla_stack.core.grounding.trackers import OpticalFlowTracker, Tracker, TrackState
from vla_stack.core.types import CameraIntrinsics

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DEFAULT_MODELS: dict[str, tuple[str, str]] = {
    "grounding_dino": ("grounding-dino-tiny", "IDEA-Research/grounding-dino-tiny"),
    "owlv2": ("owlv2-base-patch16-ensemble", "google/owlv2-base-patch16-ensemble"),
    "dinov2": ("dinov2-small", "facebook/dinov2-small"),
    "sam2": ("sam2.1-hiera-tiny", "facebook/sam2.1-hiera-tiny"),
}
"""Backend -> (directory name under <data_home>/models, Hugging Face hub id)."""


class ModelNotAvailable(FileNotFoundError):
    """The weights of a learned backend are not on this machine (they are never downloaded)."""


def _models_dir() -> Path:
    from vla_stack.paths import data_home

    return data_home() / "models"


def resolve_model_path(backend: str, model_path: str | os.PathLike | None = None) -> Path:
    """Local directory holding `backend`'s checkpoint; never touches the network.

    Args:
        backend: key of DEFAULT_MODELS.
        model_path: a directory, or a hub id to look up in the local HF cache, or None/"" for the defaults.

    Raises:
        ModelNotAvailable: naming the directory to put the files in.
    """
    dir_name, hub_id = DEFAULT_MODELS[backend]
    tried: list[str] = []
    candidates: list[str] = []
    if model_path:
        candidates.append(str(model_path))
    else:
        candidates += [str(_models_dir() / dir_name), hub_id]
    for cand in candidates:
        p = Path(cand).expanduser()
        if p.is_dir():
            if (p / "config.json").is_file():
                return p
            tried.append(f"{p} (directory without config.json)")
            continue
        if "/" in cand and not cand.startswith(("/", ".", "~")):
            try:
                from huggingface_hub import try_to_load_from_cache

                hit = try_to_load_from_cache(cand, "config.json")
            except Exception as exc:  # noqa: BLE001 - any cache problem means "not available"
                hit = None
                log.debug("HF cache lookup of %s failed: %s", cand, exc)
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit).parent
            tried.append(f"Hugging Face cache entry '{cand}'")
        else:
            tried.append(str(p))
    looks_like_hub_id = bool(model_path) and str(model_path).count("/") == 1 and not str(model_path).startswith((".", "/", "~"))
    target = Path(model_path).expanduser() if model_path and not looks_like_hub_id else _models_dir() / dir_name
    raise ModelNotAvailable(
        f"{backend} weights not found (tried: {', '.join(tried)}). Nothing is downloaded at run time: copy a "
        f"transformers checkpoint of {hub_id} (config.json, model.safetensors, preprocessor and tokenizer files) "
        f"to {target}, or into the local Hugging Face cache, then restart."
    )


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover
        raise ImportError("learned grounding backends need torch: pip install torch") from exc
    return torch


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        rest = []
        for j in order:
            xx0, yy0 = max(boxes[i, 0], boxes[j, 0]), max(boxes[i, 1], boxes[j, 1])
            xx1, yy1 = min(boxes[i, 2], boxes[j, 2]), min(boxes[i, 3], boxes[j, 3])
            inter = max(0.0, xx1 - xx0) * max(0.0, yy1 - yy0)
            a = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            b = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
            if inter / max(a + b - inter, 1e-9) < iou:
                rest.append(j)
        order = rest
    return keep


def _to_proposals(boxes: np.ndarray, scores: np.ndarray, labels: Sequence[str], shape: tuple[int, int],
                  nms_iou: float, max_proposals: int, source: str) -> list[Proposal]:
    h, w = shape
    keep = _nms(boxes, scores, nms_iou) if len(boxes) else []
    out = []
    for i in keep[:max_proposals]:
        bb = clip_bbox(boxes[i], w, h)
        if bb is None:
            continue
        out.append(Proposal(bb, None, float(scores[i]), labels[i], None, source))
    return out


def _load_open_vocabulary_detector(name: str, model_path: str, model_class: str, processor_class: str) -> tuple[Any, Any]:
    """Model + processor of an open-vocabulary detector from local files only.

    The processor is assembled from the image processor and tokenizer (its own
    `from_pretrained` may need torchvision, which does not import beside torch 2.13).
    """
    import transformers

    path = resolve_model_path(name, model_path)
    model = getattr(transformers, model_class).from_pretrained(path, local_files_only=True)
    processor = getattr(transformers, processor_class)(
        image_processor=transformers.AutoImageProcessor.from_pretrained(path, backend="pil", local_files_only=True),
        tokenizer=transformers.AutoTokenizer.from_pretrained(path, local_files_only=True),
    )
    return model, processor


class GroundingDinoDetector(Detector):
    """Open-vocabulary box proposals with GroundingDINO (transformers).

    Args:
        model_path: checkpoint directory or hub id in the local cache ("" = defaults, see module doc).
        box_threshold: minimum box confidence 0..1.
        text_threshold: minimum token confidence for the label 0..1.
        nms_iou: overlapping boxes above this IoU are merged (keeps the higher score).
        max_proposals: at most this many proposals per image.
        device: torch device ("cpu").
        model, processor: ready objects (tests / shared models); skip loading.
    """

    needs_depth = False

    def __init__(self, model_path: str = "", box_threshold: float = 0.30, text_threshold: float = 0.25,
                 nms_iou: float = 0.5, max_proposals: int = 20, device: str = "cpu",
                 model: Any = None, processor: Any = None) -> None:
        if not 0.0 <= box_threshold <= 1.0 or not 0.0 <= text_threshold <= 1.0:
            raise ValueError("box_threshold and text_threshold must be in 0..1")
        self.box_threshold, self.text_threshold = box_threshold, text_threshold
        self.nms_iou, self.max_proposals, self.device = nms_iou, max_proposals, device
        if model is None or processor is None:
            model, processor = _load_open_vocabulary_detector(
                "grounding_dino", model_path, "GroundingDinoForObjectDetection", "GroundingDinoProcessor")
        self.model = model.to(device).eval()
        self.processor = processor

    def detect(self, rgb: np.ndarray, depth: np.ndarray | None, intrinsics: CameraIntrinsics | None,
               categories: Sequence[str]) -> Detections:
        """Boxes of `categories` (prompt "cup. kettle.")."""
        torch = _torch()
        rgb = check_rgb(rgb)
        cats = [c.strip().lower() for c in categories if c.strip()] or ["object"]
        prompt = " ".join(f"{c}." for c in cats)
        inputs = self.processor(images=rgb, text=prompt, return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.model(**inputs)
        res = self.processor.post_process_grounded_object_detection(
            out, input_ids=inputs["input_ids"], threshold=self.box_threshold, text_threshold=self.text_threshold,
            target_sizes=[rgb.shape[:2]],
        )[0]
        boxes = res["boxes"].detach().cpu().numpy().astype(np.float64)
        scores = res["scores"].detach().cpu().numpy().astype(np.float64)
        texts = res.get("text_labels") or [""] * len(scores)
        labels = [next((c for c in cats if c in str(t)), cats[0]) for t in texts]
        props = _to_proposals(boxes, scores, labels, rgb.shape[:2], self.nms_iou, self.max_proposals, "grounding_dino")
        return Detections(props, None, "" if props else f"no {' / '.join(cats)} above box threshold {self.box_threshold}")


class Owlv2Detector(Detector):
    """Open-vocabulary box proposals with OWLv2 (transformers).

    OWLv2 pads the image to a square before resizing, so boxes are rescaled with the padded
    size (max(H, W)) and then clipped to the image.

    Args:
        model_path: checkpoint directory or hub id in the local cache ("" = defaults).
        threshold: minimum box confidence 0..1.
        query_template: text query per category ("a photo of a {}").
        nms_iou, max_proposals, device, model, processor: as GroundingDinoDetector.
    """

    needs_depth = False

    def __init__(self, model_path: str = "", threshold: float = 0.15, query_template: str = "a photo of a {}",
                 nms_iou: float = 0.5, max_proposals: int = 20, device: str = "cpu",
                 model: Any = None, processor: Any = None) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be in 0..1")
        if "{}" not in query_template:
            raise ValueError("query_template needs a '{}' for the category word")
        self.threshold, self.query_template = threshold, query_template
        self.nms_iou, self.max_proposals, self.device = nms_iou, max_proposals, device
        if model is None or processor is None:
            model, processor = _load_open_vocabulary_detector("owlv2", model_path, "Owlv2ForObjectDetection", "Owlv2Processor")
        self.model = model.to(device).eval()
        self.processor = processor

    def detect(self, rgb: np.ndarray, depth: np.ndarray | None, intrinsics: CameraIntrinsics | None,
               categories: Sequence[str]) -> Detections:
        """Boxes of `categories` (one text query per category)."""
        torch = _torch()
        rgb = check_rgb(rgb)
        cats = [c.strip().lower() for c in categories if c.strip()] or ["object"]
        queries = [self.query_template.format(c) for c in cats]
        max_len = int(self.model.config.text_config.max_position_embeddings)
        inputs = self.processor(text=[queries], images=rgb, return_tensors="pt", padding="max_length",
                                max_length=max_len, truncation=True).to(self.device)
        with torch.no_grad():
            out = self.model(**inputs)
        side = max(rgb.shape[:2])
        res = self.processor.post_process_grounded_object_detection(
            out, threshold=self.threshold, target_sizes=[(side, side)], text_labels=[cats]
        )[0]
        boxes = res["boxes"].detach().cpu().numpy().astype(np.float64)
        scores = res["scores"].detach().cpu().numpy().astype(np.float64)
        labels = [cats[int(i)] if 0 <= int(i) < len(cats) else cats[0] for i in res["labels"].tolist()]
        props = _to_proposals(boxes, scores, labels, rgb.shape[:2], self.nms_iou, self.max_proposals, "owlv2")
        return Detections(props, None, "" if props else f"no {' / '.join(cats)} above threshold {self.threshold}")


class Dinov2Embedder(Embedder):
    """Instance embeddings from DINOv2 (transformers): CLS token, mean patch token, or both.

    Crops are masked (background set to mid grey) so the embedding describes the object, not
    the table around it.

    Args:
        model_path: checkpoint directory or hub id in the local cache ("" = defaults).
        pooling: "cls", "mean" or "cls+mean".
        mask_background: grey out pixels outside the object mask.
        batch_size: crops per forward pass.
        device, model, processor: as the detectors (processor = an image processor).
    """

    name = "dinov2"

    def __init__(self, model_path: str = "", pooling: str = "cls", mask_background: bool = True, batch_size: int = 16,
                 device: str = "cpu", model: Any = None, processor: Any = None) -> None:
        if pooling not in ("cls", "mean", "cls+mean"):
            raise ValueError(f"pooling must be cls, mean or cls+mean, got {pooling!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.pooling, self.mask_background, self.batch_size, self.device = pooling, mask_background, batch_size, device
        self._model_id = "injected"
        if model is None or processor is None:
            from transformers import AutoImageProcessor, Dinov2Model

            path = resolve_model_path("dinov2", model_path)
            model = Dinov2Model.from_pretrained(path, local_files_only=True)
            processor = AutoImageProcessor.from_pretrained(path, backend="pil", local_files_only=True)
            self._model_id = path.name
        self.model = model.to(device).eval()
        self.processor = processor

    @property
    def version(self) -> str:
        """dinov2:<checkpoint>:<hidden size>:<pooling>:<masking>."""
        return f"dinov2:{self._model_id}:{self.model.config.hidden_size}:{self.pooling}:{int(self.mask_background)}"

    def embed_crops(self, crops: Sequence[ObjectCrop]) -> np.ndarray:
        """(N, D) float32 unit embeddings."""
        torch = _torch()
        if not crops:
            d = self.model.config.hidden_size * (2 if self.pooling == "cls+mean" else 1)
            return np.zeros((0, d), np.float32)
        images = []
        for c in crops:
            img = c.rgb.copy()
            if self.mask_background and c.mask.shape == img.shape[:2]:
                img[~c.mask] = 128
            images.append(img)
        outs = []
        for i in range(0, len(images), self.batch_size):
            inputs = self.processor(images=images[i : i + self.batch_size], return_tensors="pt").to(self.device)
            with torch.no_grad():
                hidden = self.model(**inputs).last_hidden_state
            cls, mean = hidden[:, 0], hidden[:, 1:].mean(dim=1)
            feat = {"cls": cls, "mean": mean, "cls+mean": torch.cat([cls, mean], dim=1)}[self.pooling]
            outs.append(torch.nn.functional.normalize(feat, dim=1).cpu().numpy())
        return np.concatenate(outs).astype(np.float32)


class Sam2Segmenter(Segmenter):
    """Box-prompted masks from SAM2 (transformers `Sam2Model`).

    Preprocessing is done here (the SAM2 processor needs torchvision): resize to the model's
    square input, ImageNet normalisation; the box is scaled to that size; the low-resolution
    mask logits are upsampled to the image and thresholded at 0.

    Args:
        model_path: checkpoint directory or hub id in the local cache ("" = defaults).
        multimask: ask for 3 masks and keep the one with the best predicted IoU.
        device, model: as the other backends.
    """

    def __init__(self, model_path: str = "", multimask: bool = True, device: str = "cpu", model: Any = None) -> None:
        self.multimask, self.device = multimask, device
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if model is None:
            from transformers import Sam2Model

            path = resolve_model_path("sam2", model_path)
            model = Sam2Model.from_pretrained(path, local_files_only=True)
            pp = path / "preprocessor_config.json"
            if pp.is_file():
                import json

                cfg = json.loads(pp.read_text())
                mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
        self.model = model.to(device).eval()
        size = getattr(self.model.config.vision_config.backbone_config, "image_size", None) or [1024, 1024]
        self.input_size = int(size[0] if isinstance(size, (list, tuple)) else size)
        self._mean, self._std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self._cache_key: tuple | None = None
        self._cache_emb: Any = None
        self._lock = threading.Lock()  # shared by the pipeline (detection thread) and the tracker

    def _embeddings(self, rgb: np.ndarray) -> Any:
        import cv2

        torch = _torch()
        key = (rgb.shape, int(rgb[::37, ::41].sum()), id(rgb))
        if key == self._cache_key:
            return self._cache_emb
        s = self.input_size
        img = cv2.resize(rgb, (s, s), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        img = (img - self._mean) / self._std
        px = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].to(self.device)
        with torch.no_grad():
            emb = self.model.get_image_embeddings(px)
        self._cache_key, self._cache_emb = key, emb
        return emb

    def segment_box(self, rgb: np.ndarray, bbox: BBox) -> tuple[np.ndarray, float]:
        """(mask (H, W) bool, predicted IoU) of the object in `bbox` (thread-safe)."""
        with self._lock:
            return self._segment_box(check_rgb(rgb), bbox)

    def _segment_box(self, rgb: np.ndarray, bbox: BBox) -> tuple[np.ndarray, float]:
        torch = _torch()
        h, w = rgb.shape[:2]
        s = self.input_size
        emb = self._embeddings(rgb)
        box = torch.tensor([[[bbox[0] * s / w, bbox[1] * s / h, bbox[2] * s / w, bbox[3] * s / h]]], dtype=torch.float32)
        with torch.no_grad():
            out = self.model(image_embeddings=emb, input_boxes=box.to(self.device), multimask_output=self.multimask)
        ious = out.iou_scores[0, 0]
        k = int(torch.argmax(ious))
        logits = out.pred_masks[0, 0, k][None, None]
        up = torch.nn.functional.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        mask = (up > 0).cpu().numpy()
        return clean_mask(mask, 3), float(ious[k])

    def segment(self, rgb: np.ndarray, depth: np.ndarray | None, intrinsics: CameraIntrinsics | None,
                proposal: Proposal, table_plane: np.ndarray | None = None) -> np.ndarray:
        """SAM2 mask of the proposal's box."""
        return self.segment_box(rgb, proposal.bbox)[0]


class Sam2BoxTracker(Tracker):
    """Tracking with SAM2: Lucas-Kanade flow carries the box, SAM2 re-segments the object in it.

    Confidence = the flow tracker's confidence times SAM2's predicted IoU.

    Args:
        segmenter: a ready Sam2Segmenter (shared with the pipeline), else one is loaded from model_path.
        model_path, device: as Sam2Segmenter.
        flow_args: keyword arguments of the OpticalFlowTracker.
    """

    def __init__(self, segmenter: Sam2Segmenter | None = None, model_path: str = "", device: str = "cpu",
                 flow_args: dict[str, Any] | None = None) -> None:
        self.segmenter = segmenter or Sam2Segmenter(model_path=model_path, device=device)
        self.flow = OpticalFlowTracker(**(flow_args or {}))

    @property
    def active(self) -> bool:
        """True while tracking."""
        return self.flow.active

    def reset(self) -> None:
        """Forget the object."""
        self.flow.reset()

    def init(self, rgb: np.ndarray, mask: np.ndarray) -> None:
        """Start tracking `mask` in `rgb`."""
        self.flow.init(rgb, mask)

    def update(self, rgb: np.ndarray) -> TrackState:
        """Flow-propagated box, re-segmented by SAM2."""
        state = self.flow.update(rgb)
        if state.lost or state.bbox is None:
            return state
        mask, iou = self.segmenter.segment_box(rgb, state.bbox)
        bbox = mask_bbox(mask)
        if bbox is None:
            return TrackState(state.mask, state.bbox, 0.0, False)
        return TrackState(mask, bbox, float(state.confidence * max(0.0, min(1.0, iou))), False)
