"""GroundingPipeline: personal instruction + RGB-D frames -> which object is "mine", its mask,
a highlighted image, the rewritten instruction and a 3D target.

Stages (each picked by registry name in `GroundingConfig`):

    instruction ──► parse personal references ──► enrolled objects to ground
    frame ──► detector (proposals of the category) ──► embedder ──► matching vs memory
          ──► segmenter (mask) ──► tracker (following frames) ──► prompting + 3D target

Detection (detector + embedding + matching + segmentation) runs on the first frame, every
`redetect_every` frames, and whenever a tracker's confidence drops below
`redetect_below_confidence` or it loses the object; the frames in between are tracked.

Threading (for a node that keeps tracking at camera rate while detection runs elsewhere):
`detect()` only reads the configuration, memory and the stage objects, so it may run in a
worker thread while `track()` runs in the camera callback. `accept_detection()`, `track()`,
`set_instruction()` and `process()` change the tracking state and belong to one thread.
`process()` is the synchronous combination (detect when needed, else track).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from vla_stack.core.grounding.embedders import EMBEDDERS, Embedder, ObjectCrop, crop_object
from vla_stack.core.grounding.imageops import BBox, InvalidImage, check_depth, check_rgb, mask_bbox, mask_iou
from vla_stack.core.grounding.instruction import ParsedInstruction, parse_instruction
from vla_stack.core.grounding.matching import MatchConfig, MatchResult, ObjectRule, match
from vla_stack.core.grounding.memory import PersonalObjectMemory
from vla_stack.core.grounding.prompting import (
    HighlightStyle,
    assign_colors,
    highlight_objects,
    prompt_instruction,
)
from vla_stack.core.grounding.proposals import DETECTORS, Detections, Detector, Proposal
from vla_stack.core.grounding.segmenters import SEGMENTERS, Segmenter
from vla_stack.core.grounding.target import TargetConfig, TargetEstimate, estimate_target, pose_to_matrix
from vla_stack.core.grounding.trackers import TRACKERS, Tracker, associate
from vla_stack.core.types import CameraIntrinsics, Pose

log = logging.getLogger(__name__)

GroundingStatus = Literal["found", "not_found", "ambiguous", "no_reference"]


@dataclass
class GroundingConfig:
    """Which backend runs each stage, and how often to re-detect."""

    detector: str = field(default="depth_clusters", metadata={"help": "Proposal backend: depth_clusters | grounding_dino | owlv2"})
    detector_args: dict[str, Any] = field(default_factory=dict, metadata={"help": "Keyword arguments of the detector"})
    embedder: str = field(default="appearance", metadata={"help": "Embedding backend: appearance | dinov2"})
    embedder_args: dict[str, Any] = field(default_factory=dict, metadata={"help": "Keyword arguments of the embedder"})
    segmenter: str = field(default="depth_refine", metadata={"help": "Mask backend: depth_refine | sam2"})
    segmenter_args: dict[str, Any] = field(default_factory=dict, metadata={"help": "Keyword arguments of the segmenter"})
    tracker: str = field(default="optical_flow", metadata={"help": "Tracking backend: optical_flow | sam2"})
    tracker_args: dict[str, Any] = field(default_factory=dict, metadata={"help": "Keyword arguments of the tracker"})
    matching: MatchConfig = field(default_factory=MatchConfig, metadata={"help": "Instance matching thresholds"})
    target: TargetConfig = field(default_factory=TargetConfig, metadata={"help": "3D target estimation"})
    highlight: HighlightStyle = field(default_factory=HighlightStyle, metadata={"help": "Highlight colours and opacity"})
    redetect_every: int = field(default=15, metadata={"help": "Re-detect every n frames while tracking (0 = only when unsure)"})
    redetect_below_confidence: float = field(
        default=0.4, metadata={"help": "Re-detect when the tracker's confidence drops below this (0..1)"}
    )
    association_min_iou: float = field(
        default=0.3, metadata={"help": "Min IoU for a tracked mask to claim a re-detected proposal"}
    )
    occlusion_hold_s: float = field(
        default=15.0,
        metadata={"help": "Object permanence: while a detected object is covered by something in front of it (the arm "
                  "reaching for it), report its last detected position, for at most this long, s (0 = off; needs "
                  "depth and the camera pose)"},
    )
    occluder_margin_m: float = field(
        default=0.015,
        metadata={"help": "An anchor pixel whose depth is this much closer than when the object was detected there is "
                  "covered by something in front of the object (the arm), m"},
    )
    occluded_fraction: float = field(
        default=0.15,
        metadata={"help": "With at least this fraction of the object's detected pixels covered, detections and tracking "
                  "of it are not trusted (their masks include the occluder) and its detected position is reported"},
    )
    max_track_jump_m: float = field(
        default=0.03,
        metadata={"help": "While anything covers part of a detected object (below occluded_fraction), a tracked 3D "
                  "target farther than this from the detection's is the mask sliding onto the occluder: the detected "
                  "position is reported instead, m"},
    )
    memory_root: str = field(default="", metadata={"help": "Personal-object memory directory ('' = <data dir>/personal_objects, "
                                                                      "i.e. $VLA_STACK_HOME or ~/.vla_stack)"})
    base_frame: str = field(default="base", metadata={"help": "frame_id of targets in the robot base frame"})
    personal: bool = field(
        default=True,
        metadata={"help": "True: pick the enrolled instance by matching (VAP). False: generic baseline, the best "
                  "proposal of the category with no personal memory (what a generic open-vocabulary grounder does)"},
    )

    def __post_init__(self) -> None:
        if isinstance(self.matching, dict):
            self.matching = MatchConfig(**self.matching)
        if isinstance(self.target, dict):
            self.target = TargetConfig(**self.target)
        if isinstance(self.highlight, dict):
            self.highlight = HighlightStyle(**self.highlight)
        for reg, name in ((DETECTORS, self.detector), (EMBEDDERS, self.embedder), (SEGMENTERS, self.segmenter),
                          (TRACKERS, self.tracker)):
            reg.get(name)  # KeyError with a "did you mean" on a typo
        if self.redetect_every < 0:
            raise ValueError(f"redetect_every must be >= 0, got {self.redetect_every}")
        if not 0.0 <= self.redetect_below_confidence <= 1.0:
            raise ValueError(f"redetect_below_confidence must be in 0..1, got {self.redetect_below_confidence}")
        if not 0.0 < self.association_min_iou <= 1.0:
            raise ValueError(f"association_min_iou must be in (0, 1], got {self.association_min_iou}")
        if not (self.occluder_margin_m > 0 and 0.0 < self.occluded_fraction <= 1.0):
            raise ValueError(f"occluder_margin_m must be > 0 and occluded_fraction in (0, 1], got "
                             f"{self.occluder_margin_m}, {self.occluded_fraction}")
        if not self.max_track_jump_m > 0:
            raise ValueError(f"max_track_jump_m must be > 0, got {self.max_track_jump_m}")
        if not self.occlusion_hold_s >= 0:
            raise ValueError(f"occlusion_hold_s must be >= 0, got {self.occlusion_hold_s}")


@dataclass
class GroundingFrame:
    """One camera observation.

    Args:
        rgb: (H, W, 3) uint8.
        depth: (H, W) aligned depth (float32 m or uint16 mm), or None.
        intrinsics: camera model of rgb/depth, or None.
        camera_pose: T_base_camera (Pose of the optical frame in the base frame, or 4x4), or None.
        stamp: capture time, s.
    """

    rgb: np.ndarray
    depth: np.ndarray | None = None
    intrinsics: CameraIntrinsics | None = None
    camera_pose: Pose | np.ndarray | None = None
    stamp: float = 0.0


@dataclass(frozen=True)
class Exclusion:
    """An object instance grounding must not select (the user said "not that one").

    Args:
        position: (3,) point of the excluded instance, m, in `frame_id`.
        radius: proposals whose centroid lies within this distance are dropped, m. In the base
            frame the distance is horizontal (objects stand on a support surface, and a grasp
            point sits a few cm above the visible-surface centroid); in a camera frame it is 3D.
        frame_id: "base" (the pipeline's `base_frame`) or the camera optical frame.
    """

    position: tuple[float, float, float]
    radius: float
    frame_id: str


@dataclass(frozen=True)
class CandidateScore:
    """Match score of one proposal against one personal object."""

    bbox: BBox
    score: float
    votes: int


@dataclass
class ObjectGrounding:
    """Grounding of one personal object in one frame.

    Args:
        name, category: the enrolled object.
        color: highlight colour word assigned to it.
        status: "found", "not_found" or "ambiguous".
        mask: (H, W) bool (empty unless found).
        bbox: box of the mask (found) or of the best candidate (ambiguous), else None.
        score: ensemble score of the chosen/best candidate (NaN without candidates).
        candidates: score of every proposal of this frame (detection frames only).
        runner_up: the second candidate when ambiguous.
        reason: why this status, for logs and the status topic.
        source: "detection" or "tracking".
        tracking_confidence: tracker confidence (tracking frames), else 1 after a detection.
        target: 3D target (found with depth), else None.
        proposals: the proposal of every candidate, aligned with `candidates` (detection frames
            that ended ambiguous or not found; what a user's choice is resolved against).
    """

    name: str
    category: str
    color: str
    status: Literal["found", "not_found", "ambiguous"]
    mask: np.ndarray
    bbox: BBox | None = None
    score: float = float("nan")
    candidates: list[CandidateScore] = field(default_factory=list)
    runner_up: CandidateScore | None = None
    reason: str = ""
    source: str = "detection"
    tracking_confidence: float = 0.0
    target: TargetEstimate | None = None
    proposals: list[Proposal] = field(default_factory=list)


USER_CHOSEN = "the instance the user chose"
"""Start of the reason of a detection that kept the user's chosen instance."""

CONFIRMED_RADIUS_M = 0.05
"""A proposal within this distance of the instance the user chose (horizontal in the base frame,
3D in the camera frame) is that instance on later detections, m."""


@dataclass(frozen=True)
class Confirmation:
    """The instance of an object the user chose or confirmed ("the left one", "yes, that one").

    Later detections keep it (whatever the matcher says about it and its look-alikes) while a
    proposal lies within `radius` of `position`; without depth, the tracked mask claims it.

    Args:
        position: (3,) centroid of the instance, m, in `frame_id` (None: not known, no depth).
        frame_id: the pipeline's base frame or "camera".
        radius: m.
        reason: how the user chose it ("user chose the left one (score 0.912)").
    """

    position: tuple[float, float, float] | None
    frame_id: str
    radius: float
    reason: str


@dataclass
class _PendingChoice:
    """The candidates of an object's last ambiguous answer (what a user's choice resolves against)."""

    frame: GroundingFrame
    proposals: list[Proposal]
    scores: list[float]
    table_plane: np.ndarray | None


@dataclass(frozen=True)
class SelectionOutcome:
    """What `GroundingPipeline.select` did with a user's choice.

    Args:
        accepted: the choice was applied (else nothing changed).
        reason: what happened / why it was refused, for logs and the status.
        name: the object the choice is about.
        grounding: the chosen instance, found (accepted only).
        crop_frame: the frame the chosen instance was seen in (for an online confirmation view).
    """

    accepted: bool
    reason: str
    name: str = ""
    grounding: ObjectGrounding | None = None
    crop_frame: GroundingFrame | None = None


@dataclass
class DetectionOutcome:
    """Result of `GroundingPipeline.detect` for one frame (input to `accept_detection`)."""

    frame: GroundingFrame
    detections: Detections
    objects: list[ObjectGrounding]
    timings: dict[str, float]


@dataclass
class GroundingResult:
    """Everything the grounding stage publishes for one frame.

    Args:
        status: overall: "no_reference" (nothing personal to ground), else "ambiguous" if any
            object is ambiguous, "not_found" if any is not found, else "found".
        instruction: original instruction text ("" when none).
        rewritten_instruction: instruction with the highlighted objects' phrases rewritten.
        objects: per personal object groundings, in instruction order.
        highlighted: (H, W, 3) uint8 image with every found object highlighted.
        mask: (H, W) bool union of the found objects' masks.
        mode: "detect" or "track" (what produced this frame's masks), or "none".
        timings: seconds: detection_s, tracking_s, target_s, prompting_s, total_s (those that ran).
        stamp: the frame's stamp, s.
        reason: explanation of the overall status.
    """

    status: GroundingStatus
    instruction: str
    rewritten_instruction: str
    objects: list[ObjectGrounding]
    highlighted: np.ndarray
    mask: np.ndarray
    mode: str
    timings: dict[str, float]
    stamp: float = 0.0
    reason: str = ""

    def primary(self) -> ObjectGrounding | None:
        """The first personal object of the instruction (None without one)."""
        return self.objects[0] if self.objects else None

    @property
    def bbox(self) -> BBox | None:
        """Box of the first object (None without one)."""
        p = self.primary()
        return p.bbox if p else None

    @property
    def target(self) -> TargetEstimate | None:
        """3D target of the first object (None when not found or without depth)."""
        p = self.primary()
        return p.target if p else None

    @property
    def scores(self) -> list[CandidateScore]:
        """Candidate scores of the first object."""
        p = self.primary()
        return p.candidates if p else []


@dataclass
class _Anchor:
    """Where a track's object was last detected for sure (object permanence)."""

    grounding: ObjectGrounding  # the detection, with a base-frame target
    camera: np.ndarray  # T_base_camera of its frame
    pixels: np.ndarray | None  # flat indices of its mask pixels with valid depth (None: no depth)
    depth: np.ndarray | None  # their depth then, m


@dataclass
class _Track:
    name: str
    category: str
    color: str
    tracker: Tracker
    frames_since_detection: int = 0
    confidence: float = 0.0
    last: ObjectGrounding | None = None
    anchor: _Anchor | None = None


def select_generic(detections: Detections) -> int | None:
    """Index of the proposal a generic (no personal memory) grounder picks: the highest
    detector score, ties broken by the larger mask/box. None without proposals."""
    if not detections.proposals:
        return None

    def key(i: int) -> tuple[float, int]:
        p = detections.proposals[i]
        area = int(np.count_nonzero(p.mask)) if p.mask is not None else (p.bbox[2] - p.bbox[0]) * (p.bbox[3] - p.bbox[1])
        return (p.score, area)

    return max(range(len(detections.proposals)), key=key)


class GroundingPipeline:
    """Personalised grounding (VAP) of instructions in camera frames.

    Args:
        config: GroundingConfig (backends by registry name, thresholds).
        memory: the personal-object memory; default `PersonalObjectMemory(config.memory_root or None)`.
        detector, embedder, segmenter: ready stage objects overriding the registry names
            (tests, or sharing one loaded model between pipelines).
    """

    def __init__(
        self,
        config: GroundingConfig | None = None,
        memory: PersonalObjectMemory | None = None,
        detector: Detector | None = None,
        embedder: Embedder | None = None,
        segmenter: Segmenter | None = None,
    ) -> None:
        self.config = config or GroundingConfig()
        cfg = self.config
        self.memory = memory if memory is not None else PersonalObjectMemory(cfg.memory_root or None)
        self.detector: Detector = detector or DETECTORS.create(cfg.detector, **cfg.detector_args)
        self.embedder: Embedder = embedder or EMBEDDERS.create(cfg.embedder, **cfg.embedder_args)
        self.segmenter: Segmenter = segmenter or SEGMENTERS.create(cfg.segmenter, **cfg.segmenter_args)
        self._parsed: ParsedInstruction | None = None
        self._tracks: list[_Track] = []
        self._references: dict[str, np.ndarray] = {}
        self._rules: dict[str, ObjectRule] = {}  # decision "per_object": each target's own rule
        self._table_plane: np.ndarray | None = None
        self._exclusions: list[Exclusion] = []
        self._confirmed: dict[str, Confirmation] = {}  # name -> the instance the user chose
        self._pending: dict[str, _PendingChoice] = {}  # name -> candidates of its last ambiguous answer

    # ---- instruction ---------------------------------------------------------------------
    def set_instruction(self, text: object) -> ParsedInstruction:
        """Parse a new instruction and ground its personal objects from the next frame on.

        Never raises on bad text: an invalid instruction clears the targets, and its reason
        shows up in the next result.
        """
        objects = self.memory.objects()
        parsed = parse_instruction(text, objects)
        if self._parsed is None or parsed.original != self._parsed.original:
            self._confirmed.clear()  # another task: the user's earlier choices do not carry over
            self._pending.clear()
        self._parsed = parsed
        self.set_targets(parsed.object_names if parsed.valid else [])
        if not parsed.valid:
            log.warning("instruction rejected: %s (%r)", parsed.reason, parsed.original[:80])
        for ref in parsed.references:
            if not ref.resolved:
                log.info("personal reference '%s' not grounded: %s", ref.text, ref.reason)
        return parsed

    def set_targets(self, names: list[str]) -> None:
        """Ground exactly these enrolled objects (instruction order); trackers of others are dropped."""
        colors = assign_colors(names, self.config.highlight)
        old = {t.name: t for t in self._tracks}
        tracks = []
        for name in names:
            obj = self.memory.get(name)
            if name not in self._references:
                self._references[name] = self.memory.reference_embeddings(name, self.embedder)
            if self.config.matching.decision == "per_object" and name not in self._rules:
                self._rules[name] = self.memory.decision_rule(name, self.embedder, self.config.matching.top_k)
            t = old.get(name) or _Track(name, obj.category, colors[name], self._make_tracker())
            t.color = colors[name]
            tracks.append(t)
        self._tracks = tracks

    def set_exclusions(self, exclusions: list[Exclusion]) -> None:
        """Replace the set of excluded instances (an empty list clears it).

        Tracks of objects that now lie inside an exclusion are dropped, so the next frame
        re-detects among the remaining candidates.
        """
        for e in exclusions:
            if not (np.all(np.isfinite(e.position)) and np.isfinite(e.radius) and e.radius > 0):
                raise ValueError(f"exclusion needs a finite position and radius > 0, got {e}")
        self._exclusions = list(exclusions)
        self._pending.clear()  # the candidates change: an earlier question is void
        for name, c in list(self._confirmed.items()):
            if c.position is not None and self._excluded_point(*self._confirmation_poses(c)):
                del self._confirmed[name]  # "not that one" about the instance the user had chosen
        if self._exclusions:
            for t in self._tracks:
                last = t.last
                if last is not None and last.target is not None and self._excluded_point(
                        last.target.centroid_base, last.target.centroid_camera):
                    t.tracker.reset()
                    t.last = None
                    t.confidence = 0.0
                target = t.anchor.grounding.target if t.anchor is not None else None
                if target is not None and self._excluded_point(target.centroid_base, target.centroid_camera):
                    t.anchor = None

    @property
    def exclusions(self) -> list[Exclusion]:
        """The current exclusion set."""
        return list(self._exclusions)

    def _excluded_point(self, base: Pose | None, camera: Pose | None) -> bool:
        for e in self._exclusions:
            ex = np.asarray(e.position, float)
            if e.frame_id == self.config.base_frame:
                if base is not None and np.hypot(*(np.asarray(base.position[:2]) - ex[:2])) <= e.radius:
                    return True
            elif camera is not None and np.linalg.norm(np.asarray(camera.position) - ex) <= e.radius:
                return True
        return False

    def _proposal_poses(self, p: Proposal, frame: GroundingFrame) -> tuple[Pose | None, Pose | None]:
        """(base-frame, camera-frame) centroid of a proposal (None where not known)."""
        if p.centroid_camera is None:
            return None, None
        c = np.asarray(p.centroid_camera, float)
        cam = Pose(tuple(c), (0.0, 0.0, 0.0, 1.0), 0.0, "camera")
        base = None
        if frame.camera_pose is not None:
            T = pose_to_matrix(frame.camera_pose)
            b = T[:3, :3] @ c + T[:3, 3]
            base = Pose(tuple(b), (0.0, 0.0, 0.0, 1.0), 0.0, self.config.base_frame)
        return base, cam

    def _excluded_proposals(self, props: list[Proposal], frame: GroundingFrame) -> set[int]:
        if not self._exclusions:
            return set()
        out = set()
        for i, p in enumerate(props):
            base, cam = self._proposal_poses(p, frame)
            if cam is not None and self._excluded_point(base, cam):
                out.add(i)
        return out

    def clear(self) -> None:
        """Forget the instruction, the tracks, the exclusions and the user's choices (a new episode / task)."""
        self._parsed = None
        self._tracks = []
        self._exclusions = []
        self._confirmed.clear()
        self._pending.clear()

    # ---- the user's choice ---------------------------------------------------------------
    @property
    def confirmed(self) -> dict[str, Confirmation]:
        """Objects whose instance the user chose or confirmed, by name."""
        return dict(self._confirmed)

    def pending_choice(self, name: str | None = None) -> int:
        """How many candidates the last ambiguous answer about `name` (default: the first target)
        offers to choose from (0: no question pending)."""
        name = name or (self._tracks[0].name if self._tracks else "")
        pending = self._pending.get(name)
        return len(pending.proposals) if pending is not None else 0

    def _confirmation_poses(self, c: Confirmation) -> tuple[Pose | None, Pose | None]:
        if c.position is None:
            return None, None
        pose = Pose(tuple(c.position), (0.0, 0.0, 0.0, 1.0), 0.0, c.frame_id)
        return (pose, None) if c.frame_id == self.config.base_frame else (None, pose)

    def _confirm(self, name: str, p: Proposal | None, frame: GroundingFrame, reason: str) -> None:
        base, cam = self._proposal_poses(p, frame) if p is not None else (None, None)
        where = base or cam
        self._confirmed[name] = Confirmation(tuple(float(v) for v in where.position) if where is not None else None,
                                             where.frame_id if where is not None else "camera", CONFIRMED_RADIUS_M, reason)

    def _confirmed_index(self, t: _Track, props: list[Proposal], frame: GroundingFrame, shape: tuple[int, int],
                         c: Confirmation | None) -> int | None:
        """The proposal that is the instance the user chose for `t` (confirmation `c`), or None."""
        if c is None:
            return None
        if c.position is not None:
            ref = np.asarray(c.position, float)
            best, best_d = None, c.radius
            for i, p in enumerate(props):
                base, cam = self._proposal_poses(p, frame)
                if c.frame_id == self.config.base_frame:
                    if base is None:
                        continue
                    d = float(np.hypot(*(np.asarray(base.position[:2]) - ref[:2])))
                elif cam is not None:
                    d = float(np.linalg.norm(np.asarray(cam.position) - ref))
                else:
                    continue
                if d <= best_d:
                    best, best_d = i, d
            if best is not None:
                return best
        if t.tracker.active and t.last is not None and t.last.status == "found" and t.last.mask.shape == shape:
            return associate(t.last.mask, [p.mask for p in props], self.config.association_min_iou)
        return None

    def select(self, selector: str, index: int | None = None, box: tuple[float, float, float, float] | None = None,
               name: str = "", text: str = "") -> SelectionOutcome:
        """Apply the user's choice of candidate (`contracts.SelectionRequest`: selector, index, box)
        to object `name` ("" = the first target).

        Resolved spatially against the candidates of the object's last ambiguous answer: left /
        right / middle by the image x of the box centre; nearest / farthest by the distance of
        the candidate's 3D centroid to the camera (without depth: the largest / smallest box);
        ordinal = rank from the left; index = position in the candidate list; box = the
        candidate overlapping the clicked box most; only = the one candidate proposed. "current"
        confirms the object found now. The chosen instance is segmented on the frame it was
        seen in, tracked from there and marked user-confirmed (later detections keep it while it
        stays where it was). A choice that does not fit changes nothing and says why.
        """
        if not self._tracks:
            return SelectionOutcome(False, "no object is being grounded (no instruction with a personal object)")
        t = next((t for t in self._tracks if t.name == name), None) if name else self._tracks[0]
        if t is None:
            return SelectionOutcome(False, f"'{name}' is not being grounded (targets: {self.target_names})")
        said = f" ('{text[:60]}')" if text else ""
        pending = self._pending.get(t.name)
        if selector == "current":
            last = t.last
            if pending is None and last is not None and last.status == "found" and t.tracker.active:
                reason = f"user confirmed the highlighted {t.category}{said}"
                where = last.target.centroid_base or last.target.centroid_camera if last.target is not None else None
                self._confirmed[t.name] = Confirmation(
                    tuple(float(v) for v in where.position) if where is not None else None,
                    where.frame_id if where is not None and where.frame_id == self.config.base_frame else "camera",
                    CONFIRMED_RADIUS_M, reason)
                return SelectionOutcome(True, reason, t.name, last)
            if pending is None:
                return SelectionOutcome(False, f"nothing to confirm: '{t.name}' is {last.status.replace('_', ' ') if last else 'not grounded yet'}")
            if len(pending.proposals) != 1:
                return SelectionOutcome(False, f"nothing is highlighted to confirm: {len(pending.proposals)} candidates; "
                                        "say which one (left, right, ...)", t.name)
            selector = "only"
        if pending is None:
            state = t.last.status.replace("_", " ") if t.last is not None else "not grounded yet"
            return SelectionOutcome(False, f"no question pending about '{t.name}' (it is {state}): nothing to choose",
                                    t.name)
        n = len(pending.proposals)
        boxes = [p.bbox for p in pending.proposals]
        by_x = sorted(range(n), key=lambda i: 0.5 * (boxes[i][0] + boxes[i][2]))
        chosen: int | None = None
        why = ""
        if selector in ("left", "right"):
            chosen = by_x[0] if selector == "left" else by_x[-1]
            if n < 2:
                chosen, why = None, f"there is only one candidate: confirm it ('yes, that one') instead of '{selector}'"
        elif selector == "middle":
            if n % 2 == 1:
                chosen = by_x[n // 2]
            else:
                why = f"there is no middle one among {n} candidates"
        elif selector in ("nearest", "farthest"):
            cams = [p.centroid_camera for p in pending.proposals]
            if all(c is not None for c in cams):
                key = [float(np.linalg.norm(np.asarray(c, float))) for c in cams]  # distance to the camera
            else:  # no depth: the biggest box is the nearest
                key = [-float((b[2] - b[0]) * (b[3] - b[1])) for b in boxes]
            order = sorted(range(n), key=lambda i: key[i])
            chosen = order[0] if selector == "nearest" else order[-1]
            if n < 2:
                chosen, why = None, f"there is only one candidate: confirm it ('yes, that one') instead of '{selector}'"
        elif selector == "ordinal":
            k = -1 if index is None else int(index)
            if k == -1:
                chosen = by_x[-1]
            elif 0 <= k < n:
                chosen = by_x[k]
            else:
                why = f"there are {n} candidates, no #{k + 1} from the left"
        elif selector == "index":
            if index is not None and 0 <= index < n:
                chosen = int(index)
            else:
                why = f"candidate #{index} does not exist (the last answer listed #0..#{n - 1})"
        elif selector == "box":
            if box is None:
                why = "no box given"
            else:
                ious = [_box_iou(box, b) for b in boxes]
                k = int(np.argmax(ious))
                if ious[k] > 0.1:
                    chosen = k
                else:
                    why = f"the box {tuple(round(v) for v in box)} overlaps no candidate"
        elif selector == "only":
            if n == 1:
                chosen = 0
            else:
                why = f"there are {n} candidates, not one: say which one (left, right, ...)"
        else:
            why = f"unknown selector {selector!r}"
        if chosen is None:
            return SelectionOutcome(False, why or "nothing chosen", t.name)
        p = pending.proposals[chosen]
        frame = pending.frame
        rgb = check_rgb(frame.rgb)
        depth = self._usable_depth(frame, rgb.shape[:2])
        mask = self.segmenter.segment(rgb, depth, frame.intrinsics, p, pending.table_plane)
        if not mask.any():
            return SelectionOutcome(False, "the chosen candidate has an empty mask; choose again", t.name)
        label = _choice_label(selector, index, n, chosen, by_x)
        score = pending.scores[chosen]
        reason = f"user chose {label} (candidate #{chosen}, score {score:.3f}){said}"
        og = ObjectGrounding(t.name, t.category, t.color, "found", mask, mask_bbox(mask), score, [], None, reason,
                             "user", 1.0)
        t.tracker.init(rgb, mask)
        t.last = og
        t.confidence = 1.0
        t.frames_since_detection = 0
        t.anchor = None
        self._confirm(t.name, p, frame, reason)
        del self._pending[t.name]
        return SelectionOutcome(True, reason, t.name, og, frame)

    def _remember_question(self, og: ObjectGrounding, outcome: DetectionOutcome) -> None:
        """Keep the candidates of an ambiguous answer (or of a lone candidate not accepted) to resolve a choice."""
        asks = og.status == "ambiguous" or (og.status == "not_found" and len(og.proposals) == 1)
        if asks and og.proposals and len(og.proposals) == len(og.candidates):
            self._pending[og.name] = _PendingChoice(outcome.frame, list(og.proposals), [c.score for c in og.candidates],
                                                    outcome.detections.table_plane)
        else:
            self._pending.pop(og.name, None)

    def reload_memory(self) -> None:
        """Forget cached reference embeddings (call after enrolling or removing objects)."""
        self.memory = PersonalObjectMemory(self.memory.root)
        self._references.clear()
        self._rules.clear()
        if self._parsed is not None:
            self.set_instruction(self._parsed.original)

    def reset(self) -> None:
        """Drop all tracks (the next frame is a detection frame)."""
        for t in self._tracks:
            t.tracker.reset()
            t.last = None
            t.anchor = None
            t.frames_since_detection = 0

    def _make_tracker(self) -> Tracker:
        return TRACKERS.create(self.config.tracker, **self.config.tracker_args)

    @property
    def target_names(self) -> list[str]:
        """Personal objects being grounded, in instruction order."""
        return [t.name for t in self._tracks]

    # ---- detection -----------------------------------------------------------------------
    def needs_detection(self) -> bool:
        """True when the next frame should be a detection frame (no track, periodic, unsure)."""
        cfg = self.config
        for t in self._tracks:
            if not t.tracker.active or t.last is None or t.last.status != "found":
                return True
            if cfg.redetect_every and t.frames_since_detection + 1 >= cfg.redetect_every:
                return True
            if t.confidence < cfg.redetect_below_confidence:
                return True
        return False

    def detect(self, frame: GroundingFrame) -> DetectionOutcome:
        """Propose, embed, match and segment every target object in `frame` (thread-safe, see module doc)."""
        t0 = time.perf_counter()
        rgb = check_rgb(frame.rgb)
        depth = self._usable_depth(frame, rgb.shape[:2])
        tracks = list(self._tracks)
        categories = list(dict.fromkeys(t.category for t in tracks)) or ["object"]
        reason = ""
        try:
            detections = self.detector.detect(rgb, depth, frame.intrinsics, categories)
        except InvalidImage as exc:
            detections, reason = Detections([], None, str(exc)), str(exc)
        t_det = time.perf_counter()
        props = detections.proposals
        crops: list[ObjectCrop] = []
        ok_idx: list[int] = []
        for i, p in enumerate(props):
            try:
                crops.append(crop_object(rgb, p.mask, p.bbox))
                ok_idx.append(i)
            except InvalidImage:
                continue
        excluded = self._excluded_proposals(props, frame)
        if excluded:
            keep = [k for k, i in enumerate(ok_idx) if i not in excluded]
            crops = [crops[k] for k in keep]
            ok_idx = [ok_idx[k] for k in keep]
        if not self.config.personal:
            return self._detect_generic(frame, rgb, depth, tracks, detections, ok_idx, reason, t0, t_det)
        emb = self.embedder.embed_crops(crops) if crops else np.zeros((0, 1), np.float32)
        t_emb = time.perf_counter()
        shape = rgb.shape[:2]
        outcomes: list[ObjectGrounding] = []
        taken: list[int] = []
        for t in tracks:
            refs = self._references[t.name]
            if not ok_idx:
                why = detections.reason or reason or "no candidate objects in view"
                outcomes.append(ObjectGrounding(t.name, t.category, t.color, "not_found", np.zeros(shape, bool),
                                                reason=why))
                continue
            res = match(emb, refs, self.config.matching, excluded=[ok_idx.index(i) for i in taken if i in ok_idx],
                        rule=self._rules.get(t.name))
            outcomes.append(self._grounding_from_match(t, res, [props[i] for i in ok_idx], ok_idx, rgb, depth, frame,
                                                       detections, taken))
        t_end = time.perf_counter()
        timings = {
            "detection_s": t_end - t0,
            "proposal_s": t_det - t0,
            "embedding_s": t_emb - t_det,
            "matching_segmentation_s": t_end - t_emb,
        }
        return DetectionOutcome(frame, detections, outcomes, timings)

    def _detect_generic(self, frame: GroundingFrame, rgb: np.ndarray, depth: np.ndarray | None, tracks: list[_Track],
                        detections: Detections, ok_idx: list[int], reason: str, t0: float, t_det: float) -> DetectionOutcome:
        """Baseline without personal memory: each object gets the best remaining proposal."""
        shape = rgb.shape[:2]
        outcomes: list[ObjectGrounding] = []
        free = list(ok_idx)
        for t in tracks:
            sub = Detections([detections.proposals[i] for i in free], detections.table_plane, detections.reason)
            j = select_generic(sub)
            if j is None:
                why = detections.reason or reason or "no candidate objects in view"
                outcomes.append(ObjectGrounding(t.name, t.category, t.color, "not_found", np.zeros(shape, bool), reason=why))
                continue
            p = sub.proposals[j]
            mask = self.segmenter.segment(rgb, depth, frame.intrinsics, p, detections.table_plane)
            if not mask.any():
                outcomes.append(ObjectGrounding(t.name, t.category, t.color, "not_found", np.zeros(shape, bool), p.bbox,
                                                reason="best candidate has an empty mask"))
                continue
            free.pop(j)
            outcomes.append(ObjectGrounding(t.name, t.category, t.color, "found", mask, mask_bbox(mask), float(p.score),
                                            [], None, "generic: best category proposal (no personal memory)",
                                            "detection", 1.0))
        t_end = time.perf_counter()
        timings = {"detection_s": t_end - t0, "proposal_s": t_det - t0, "embedding_s": 0.0,
                   "matching_segmentation_s": t_end - t_det}
        return DetectionOutcome(frame, detections, outcomes, timings)

    def _grounding_from_match(
        self, t: _Track, res: MatchResult, props: list[Proposal], idx: list[int], rgb: np.ndarray,
        depth: np.ndarray | None, frame: GroundingFrame, detections: Detections, taken: list[int],
    ) -> ObjectGrounding:
        shape = rgb.shape[:2]
        cands = [CandidateScore(p.bbox, float(s), int(v)) for p, s, v in zip(props, res.scores, res.votes, strict=True)]
        empty = np.zeros(shape, bool)
        chosen = self._confirmed.get(t.name)  # (read once: the frame thread may replace it meanwhile)
        j = self._confirmed_index(t, props, frame, shape, chosen)
        if chosen is not None and j is not None and np.isfinite(res.scores[j]):  # not taken by another object
            mask = self.segmenter.segment(rgb, depth, frame.intrinsics, props[j], detections.table_plane)
            if mask.any():
                taken.append(idx[j])
                return ObjectGrounding(t.name, t.category, t.color, "found", mask, mask_bbox(mask), cands[j].score, cands,
                                       None, f"{USER_CHOSEN}: {chosen.reason} (matcher: {res.status}, {res.reason})",
                                       "detection", 1.0, proposals=[props[j]])
        if res.status == "found" and res.index is not None:
            p = props[res.index]
            mask = self.segmenter.segment(rgb, depth, frame.intrinsics, p, detections.table_plane)
            if not mask.any():
                return ObjectGrounding(t.name, t.category, t.color, "not_found", empty, p.bbox, res.best_score, cands,
                                       reason="matched candidate has an empty mask")
            taken.append(idx[res.index])
            return ObjectGrounding(t.name, t.category, t.color, "found", mask, mask_bbox(mask), res.best_score, cands,
                                   cands[res.runner_up] if res.runner_up is not None else None, res.reason,
                                   "detection", 1.0)
        if res.status == "ambiguous" and res.index is not None:
            runner = cands[res.runner_up] if res.runner_up is not None else None
            # Temporal evidence: if one of the two is the object tracked since a confident
            # detection, keep it (the other is the look-alike that just came close).
            if t.tracker.active and t.last is not None and t.last.status == "found" and t.last.mask.shape == shape:
                pair = [res.index] + ([res.runner_up] if res.runner_up is not None else [])
                j = associate(t.last.mask, [props[k].mask for k in pair], self.config.association_min_iou)
                if j is not None:
                    k = pair[j]
                    mask = self.segmenter.segment(rgb, depth, frame.intrinsics, props[k], detections.table_plane)
                    if mask.any():
                        taken.append(idx[k])
                        return ObjectGrounding(
                            t.name, t.category, t.color, "found", mask, mask_bbox(mask), cands[k].score, cands, runner,
                            f"{res.reason}; kept the candidate tracked since the last confident detection",
                            "detection", 1.0)
            return ObjectGrounding(t.name, t.category, t.color, "ambiguous", empty, props[res.index].bbox,
                                   res.best_score, cands, runner, res.reason, proposals=list(props))
        return ObjectGrounding(t.name, t.category, t.color, "not_found", empty, None, res.best_score, cands,
                               reason=res.reason, proposals=list(props))

    def accept_detection(self, outcome: DetectionOutcome) -> None:
        """Adopt a detection: (re)start the trackers of found objects on the detection's frame."""
        rgb = check_rgb(outcome.frame.rgb)
        if outcome.detections.table_plane is not None:
            self._table_plane = outcome.detections.table_plane
        by_name = {o.name: o for o in outcome.objects}
        permanence = self.config.occlusion_hold_s > 0 and outcome.frame.camera_pose is not None
        depth = self._usable_depth(outcome.frame, rgb.shape[:2]) if permanence else None
        if permanence:
            self._estimate_targets(outcome.frame, depth, outcome.objects)
        for t in self._tracks:
            og = by_name.get(t.name)
            if og is None:
                continue
            t.last = og
            t.frames_since_detection = 0
            self._remember_question(og, outcome)
            chosen = self._confirmed.get(t.name)
            if (chosen is not None and og.status == "found" and og.reason.startswith(USER_CHOSEN) and len(og.proposals) == 1
                    and og.proposals[0].centroid_camera is not None):
                self._confirm(t.name, og.proposals[0], outcome.frame, chosen.reason)  # it may have moved a little
            if og.status == "found":
                t.tracker.init(rgb, og.mask)
                t.confidence = 1.0
                if permanence:
                    self._maybe_anchor(t, og, outcome.frame, depth)  # object permanence: where it was last seen for sure
            else:
                t.tracker.reset()
                t.confidence = 0.0

    # ---- tracking ------------------------------------------------------------------------
    def track(self, frame: GroundingFrame) -> list[ObjectGrounding]:
        """Follow every found object into `frame`; objects the tracker loses become not_found."""
        rgb = check_rgb(frame.rgb)
        shape = rgb.shape[:2]
        out = []
        for t in self._tracks:
            t.frames_since_detection += 1
            if not t.tracker.active or t.last is None or t.last.status != "found":
                last = t.last
                out.append(ObjectGrounding(t.name, t.category, t.color, last.status if last else "not_found",
                                           np.zeros(shape, bool), last.bbox if last else None,
                                           last.score if last else float("nan"), [], last.runner_up if last else None,
                                           last.reason if last else "not detected yet", "tracking", 0.0))
                continue
            state = t.tracker.update(rgb)
            t.confidence = state.confidence
            if state.lost:
                og = ObjectGrounding(t.name, t.category, t.color, "not_found", np.zeros(shape, bool), None,
                                     reason="tracker lost the object; re-detecting", source="tracking")
            else:
                chosen = self._confirmed.get(t.name)
                og = ObjectGrounding(t.name, t.category, t.color, "found", state.mask, state.bbox, t.last.score, [],
                                     None, f"tracked; {chosen.reason}" if chosen is not None else "tracked", "tracking",
                                     state.confidence)
            t.last = og
            out.append(og)
        return out

    # ---- one frame, synchronous ----------------------------------------------------------
    def process(self, frame: GroundingFrame, force_detection: bool = False) -> GroundingResult:
        """Ground the current instruction in `frame` (detect when needed, else track).

        Raises:
            InvalidImage: the colour image is unusable (empty, wrong shape/dtype). A missing or
                malformed depth image is not an error: it is ignored (detectors that need
                depth then report why nothing was found).
        """
        t0 = time.perf_counter()
        rgb = check_rgb(frame.rgb)
        timings: dict[str, float] = {}
        if not self._tracks:
            return self._no_reference(rgb, frame.stamp, t0)
        mode = "track"
        objects: list[ObjectGrounding] = []
        if force_detection or self.needs_detection():
            mode = "detect"
        else:
            t1 = time.perf_counter()
            objects = self.track(frame)
            timings["tracking_s"] = time.perf_counter() - t1
            if any(o.status != "found" for o in objects) or self.needs_detection_now():
                mode = "detect"
        if mode == "detect":
            outcome = self.detect(frame)
            self.accept_detection(outcome)
            timings.update(outcome.timings)
            objects = outcome.objects
        return self._finish(frame, rgb, objects, mode, timings, t0)

    def needs_detection_now(self) -> bool:
        """True when a tracker's confidence fell below the re-detection threshold this frame."""
        return any(t.confidence < self.config.redetect_below_confidence for t in self._tracks)

    def result_from_detection(self, outcome: DetectionOutcome) -> GroundingResult:
        """Build the published result of an accepted `detect()` outcome (on the detection's frame)."""
        t0 = time.perf_counter() - outcome.timings.get("detection_s", 0.0)
        return self._finish(outcome.frame, check_rgb(outcome.frame.rgb), outcome.objects, "detect",
                            dict(outcome.timings), t0)

    def result_from_tracking(self, frame: GroundingFrame, objects: list[ObjectGrounding], tracking_s: float) -> GroundingResult:
        """Build the published result of a `track()` step (for nodes that call track() directly)."""
        return self._finish(frame, check_rgb(frame.rgb), objects, "track", {"tracking_s": tracking_s}, time.perf_counter() - tracking_s)

    def _finish(self, frame: GroundingFrame, rgb: np.ndarray, objects: list[ObjectGrounding], mode: str,
                timings: dict[str, float], t0: float) -> GroundingResult:
        cfg = self.config
        t1 = time.perf_counter()
        depth = self._usable_depth(frame, rgb.shape[:2])
        self._estimate_targets(frame, depth, objects)
        if cfg.occlusion_hold_s > 0 and frame.camera_pose is not None:
            objects = [self._permanence(o, frame, depth) for o in objects]
        t2 = time.perf_counter()
        found = [o for o in objects if o.status == "found"]
        masks = {o.name: o.mask for o in found}
        colors = {t.name: t.color for t in self._tracks}
        highlighted = highlight_objects(rgb, masks, colors, cfg.highlight)
        parsed = self._parsed
        rewritten = prompt_instruction(parsed, colors, [o.name for o in found]) if parsed is not None else ""
        union = np.zeros(rgb.shape[:2], bool)
        for m in masks.values():
            union |= m
        t3 = time.perf_counter()
        timings["target_s"] = t2 - t1
        timings["prompting_s"] = t3 - t2
        timings["total_s"] = t3 - t0
        if any(o.status == "ambiguous" for o in objects):
            status: GroundingStatus = "ambiguous"
        elif any(o.status == "not_found" for o in objects):
            status = "not_found"
        else:
            status = "found"
        reason = "; ".join(f"{o.name}: {o.status} ({o.reason})" for o in objects)
        return GroundingResult(status, parsed.text if parsed else "", rewritten, objects, highlighted, union, mode,
                               timings, frame.stamp, reason)

    def _estimate_targets(self, frame: GroundingFrame, depth: np.ndarray | None, objects: list[ObjectGrounding]) -> None:
        """Fill the 3D target of found objects that have none (needs depth, from `_usable_depth`, and intrinsics)."""
        if depth is None or frame.intrinsics is None:
            return
        up = None
        if frame.camera_pose is None and self._table_plane is not None:
            up = self._table_plane[:3]
        for o in objects:
            if o.status == "found" and o.target is None:
                try:
                    o.target = estimate_target(o.mask, depth, frame.intrinsics, frame.camera_pose, up, self.config.target,
                                               frame.stamp, self.config.base_frame)
                except ValueError as exc:
                    log.warning("no 3D target for '%s': %s", o.name, exc)

    def _occluded(self, anchor: _Anchor, frame: GroundingFrame, depth: np.ndarray | None) -> float:
        """Fraction of the anchor's pixels now covered by something closer to the camera (0 when
        it cannot be told: no depth then or now, or the camera moved)."""
        if anchor.pixels is None or anchor.pixels.size == 0 or depth is None or frame.camera_pose is None:
            return 0.0
        if not np.allclose(pose_to_matrix(frame.camera_pose), anchor.camera, atol=1e-3):
            return 0.0
        d = depth.reshape(-1)[anchor.pixels]
        valid = np.isfinite(d) & (d > 0)
        closer = np.count_nonzero(d[valid] < anchor.depth[valid] - self.config.occluder_margin_m)
        return float(closer) / float(anchor.pixels.size)

    def _maybe_anchor(self, t: _Track, og: ObjectGrounding, frame: GroundingFrame, depth: np.ndarray | None) -> bool:
        """Make a found detection the track's anchor unless the current anchor is covered (the
        detection's mask then includes the occluder). Returns True when it became the anchor."""
        if og.target is None or og.target.grasp_base is None or frame.camera_pose is None:
            return False
        if t.anchor is not None and self._occluded(t.anchor, frame, depth) >= self.config.occluded_fraction:
            return False
        pixels = values = None
        if depth is not None and depth.shape == og.mask.shape:
            idx = np.flatnonzero(og.mask.reshape(-1))
            d = depth.reshape(-1)[idx]
            keep = np.isfinite(d) & (d > 0)
            pixels, values = idx[keep], d[keep].astype(np.float32)
        t.anchor = _Anchor(og, pose_to_matrix(frame.camera_pose), pixels, values)
        return True

    def _permanence(self, o: ObjectGrounding, frame: GroundingFrame, depth: np.ndarray | None) -> ObjectGrounding:
        """Object permanence for a static scene seen by a posed camera.

        A detection that finds the object with a base-frame target becomes the track's anchor
        (with the depth of its pixels). While at least `occluded_fraction` of those pixels are
        covered by something closer to the camera than the object was (the arm reaching for
        it), masks of the object include the occluder: tracking slides onto it, detections
        merge with it, and the 3D estimate follows the arm. The anchor is then reported
        instead (source "memory", restamped) for up to `occlusion_hold_s` after its frame,
        whatever tracking or detection say, and no detection re-anchors it. While less is
        covered, a tracked target more than `max_track_jump_m` from the anchor is the mask
        sliding onto the occluder (seen in the demo 7-9 s into a pick, before 15 % was
        covered) and is replaced the same way.

        In plain view nothing is overridden: an object that was pushed or taken away uncovers
        its old pixels (they get farther, not closer), tracking/detection report where it is
        or that it is gone, and the next detection re-anchors it. One the robot carries is
        followed by the policy through the robot's kinematics.
        """
        stamp = frame.stamp
        t = next((t for t in self._tracks if t.name == o.name), None)
        if t is None or o.status == "ambiguous":
            return o  # ambiguous: the matcher's verdict stands
        if o.status == "found" and o.source == "detection" and self._maybe_anchor(t, o, frame, depth):
            return o
        if t.anchor is None:
            return o
        a = t.anchor.grounding
        age = stamp - a.target.grasp_base.stamp
        if age > self.config.occlusion_hold_s:
            t.anchor = None
            return o
        if age < 0.0:
            return o  # a frame older than the anchor's
        covered = self._occluded(t.anchor, frame, depth)
        jump = 0.0
        if o.status == "found" and o.source == "tracking" and o.target is not None and o.target.grasp_base is not None:
            jump = float(np.linalg.norm(np.asarray(o.target.grasp_base.position) - np.asarray(a.target.grasp_base.position)))
        if covered >= self.config.occluded_fraction:
            why = f"{covered:.0%} of it is covered by something in front of it ({o.status}: {o.reason})"
        elif covered > 0.0 and jump > self.config.max_track_jump_m:
            why = (f"the tracked mask moved {jump * 100:.0f} cm off the detection while {covered:.0%} of the object is "
                   "covered (it slides onto the occluder)")
        else:
            # in plain view: whatever tracking/detection says stands (an object that was taken
            # away uncovers its old pixels: not found is the truth, not the old position)
            return o
        target = replace(a.target, **{k: replace(getattr(a.target, k), stamp=stamp) for k in
                                      ("centroid_camera", "grasp_camera", "centroid_base", "grasp_base")
                                      if getattr(a.target, k) is not None})
        return replace(a, target=target, source="memory", candidates=[], tracking_confidence=0.0,
                       reason=f"{why}: reporting its last detected position ({age:.1f} s old; held up to "
                              f"{self.config.occlusion_hold_s:.0f} s)")

    def _no_reference(self, rgb: np.ndarray, stamp: float, t0: float) -> GroundingResult:
        parsed = self._parsed
        if parsed is None:
            reason, text, rewritten = "no instruction yet", "", ""
        elif not parsed.valid:
            reason, text, rewritten = f"instruction rejected: {parsed.reason}", parsed.text, ""
        elif parsed.references:
            why = "; ".join(f"'{r.text}': {r.reason}" for r in parsed.references if not r.resolved)
            reason, text, rewritten = f"no enrolled object to ground ({why})", parsed.text, parsed.text
        else:
            reason, text, rewritten = "instruction has no personal reference; nothing to ground", parsed.text, parsed.text
        return GroundingResult("no_reference", text, rewritten, [], rgb.copy(), np.zeros(rgb.shape[:2], bool), "none",
                               {"total_s": time.perf_counter() - t0}, stamp, reason)

    @staticmethod
    def _usable_depth(frame: GroundingFrame, shape: tuple[int, int]) -> np.ndarray | None:
        if frame.depth is None:
            return None
        try:
            return check_depth(frame.depth, shape)
        except InvalidImage as exc:
            log.warning("ignoring the depth image: %s", exc)
            return None


def _box_iou(a: tuple[float, ...] | BBox, b: tuple[float, ...] | BBox) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _choice_label(selector: str, index: int | None, n: int, chosen: int, by_x: list[int]) -> str:
    """How to say which one was chosen ("the left one", "the 2nd from the left")."""
    if selector in ("left", "right", "middle", "nearest", "farthest"):
        return f"the {selector} one"
    rank = by_x.index(chosen)
    words = {2: ["left", "right"], 3: ["left", "middle", "right"]}.get(n)
    where = f"the {words[rank]} one" if words else f"the {rank + 1}{ {0: 'st', 1: 'nd', 2: 'rd'}.get(rank, 'th')} from the left"
    if selector == "only":
        return "the only candidate"
    if selector == "index":
        return f"a click on {where}"
    if selector == "box":
        return f"a click on {where}"
    return where


def ground_iou(result: GroundingResult, truth: np.ndarray, name: str | None = None) -> float:
    """IoU of an object's mask in `result` with a ground-truth mask (0 when it is not found)."""
    for o in result.objects:
        if name is None or o.name == name:
            return mask_iou(o.mask, truth) if o.status == "found" else 0.0
    return 0.0
