"""Personal-object memory: the few reference images of each personal object, cut out, with
their embeddings, its category word and aliases, stored on disk.

Layout (one directory per object under the memory root; default `<data dir>/personal_objects/`,
i.e. `~/.vla_stack/personal_objects` or `$VLA_STACK_HOME/personal_objects`, see
`vla_stack.paths.data_home`; configurable)::

    <root>/<name>/object.json        name, category, aliases, references, embedding files
    <root>/<name>/ref_00.png         reference crop (RGB)
    <root>/<name>/ref_00_mask.png    its object mask (255 = object)
    <root>/<name>/emb_<hash>.npy     (R, D) float32 embeddings of one embedder version
    <root>/<name>/neg_00.png         a "not mine" look-alike the user gave (+ neg_00_mask.png)

`object.json` may also hold the object's own decision rule ("decision_rule", see
`matching.ObjectRule` and `self_calibration`), derived at enrolment with `self_calibrate` and
versioned with the embedder: `decision_rule()` re-derives a rule made for another embedder
version (with a warning) instead of using it.

Enrolment writes into a hidden temporary directory and renames it into place (the old object,
when replaced, is moved aside first and deleted last), and `object.json` is replaced atomically
when embeddings or a rule are added later: a failed enrolment leaves nothing half-written.
With `self_calibrate`, enrolment also refuses black, blank, blurred and duplicate reference
photos and an object that looks identical to one already enrolled, each with a message saying
what to do.

The default memory is user data: it lives outside the installation (a `colcon build` or a
reinstall replaces `share/vla_stack`). Objects in the installation's `config/personal_objects/`
(shipped examples, or enrolments made before issue 12 put them there) are still read, read-only,
when the user memory has no object of that name, with a warning saying where to move them.

Embeddings are keyed by the embedder's `version`, so switching embedders (appearance ->
dinov2) or their parameters recomputes them from the stored crops instead of comparing
incomparable vectors.

Reference images may be whole photos: the object is cut out using a given mask, the alpha
channel when present, or else a background model of the image border refined with GrabCut
(object on a plain, contrasting background). Masks are the reliable way: the simulator's
reference renders come with exact masks (see `vla_stack.lab.grounding.sim_scenes`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vla_stack.core.grounding.embedders import Embedder, ObjectCrop, crop_object
from vla_stack.core.grounding.imageops import (
    InvalidImage,
    check_rgb,
    fill_holes,
    largest_component,
    mask_bbox,
    pad_bbox,
)
from vla_stack.core.grounding.matching import ObjectRule

if TYPE_CHECKING:
    from vla_stack.core.grounding.self_calibration import CalibrationReport

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
"""Allowed object names: letters, digits, '_' and '-', up to 64 characters (safe as a directory name)."""

META_FILE = "object.json"
FORMAT_VERSION = 1


def default_root(create: bool = True) -> Path:
    """The user's personal-object memory: `<data dir>/personal_objects` (`vla_stack.paths.data_home`)."""
    from vla_stack.paths import data_home

    return data_home(create) / "personal_objects"


def installed_root() -> Path | None:
    """`config/personal_objects/` of this installation (read-only examples, old enrolments); None if none."""
    from vla_stack.paths import config_path

    try:
        root = config_path("personal_objects")
    except FileNotFoundError:
        return None
    return root if root.is_dir() else None


def check_name(name: object) -> str:
    """`name` if it is a valid object name, else ValueError saying what is allowed."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(
            f"invalid personal object name {name!r}: use 1-64 letters, digits, '_' or '-', starting with a letter or digit"
        )
    return name


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) RGB or (H, W, 4) RGBA uint8; ValueError when unreadable."""
    import cv2

    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"reference image {p} does not exist")
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image {p} (not an image OpenCV can decode)")
    if img.dtype == np.uint16:
        img = (img / 257).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def segment_reference(image: np.ndarray, grabcut_iterations: int = 3) -> np.ndarray:
    """(H, W) bool mask of the object in a reference photo.

    RGBA: the alpha channel. RGB: the background is modelled by up to 3 colour modes of the
    image border (k-means in Lab; a backdrop edge or a horizon gives a second mode); the
    largest region unlike all modes that does not touch the border seeds GrabCut, which
    refines the mask inside that region's box. When nothing sensible comes out (< 1 % or
    > 95 % of the image) the image is taken to be a tight crop and every pixel is object.
    Works for an object on a plain, contrasting background; pass masks (or RGBA) otherwise.
    """
    import cv2

    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InvalidImage(f"reference image must be (H, W, 3|4) uint8, got {getattr(image, 'shape', type(image))}")
    if image.shape[2] == 4:
        alpha = image[:, :, 3] > 127
        if alpha.any() and not alpha.all():
            return largest_component(fill_holes(alpha))
    rgb = check_rgb(image)
    h, w = rgb.shape[:2]
    whole = np.ones((h, w), bool)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    b = max(2, min(h, w) // 50)
    border = np.concatenate(
        [lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3), lab[:, :b].reshape(-1, 3), lab[:, -b:].reshape(-1, 3)]
    )
    k = min(3, len(border))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    _, _, centres = cv2.kmeans(border, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    dist = np.min(np.linalg.norm(lab.reshape(-1, 1, 3) - centres[None], axis=2), axis=1).reshape(h, w)
    fg = (dist > 14.0).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    best, best_area = 0, 0
    for i in range(1, n):
        x, y, ww, hh, area = stats[i]
        if x == 0 or y == 0 or x + ww == w or y + hh == h:
            continue  # touches the border: background structure, not the object
        if area > best_area:
            best, best_area = i, int(area)
    if best == 0 or not 0.01 <= best_area / (h * w) <= 0.95:
        return whole
    seed = labels == best
    x0, y0, x1, y1 = pad_bbox(mask_bbox(seed), 0.1, w, h)  # type: ignore[arg-type]
    gc = np.full((h, w), cv2.GC_BGD, np.uint8)
    gc[y0:y1, x0:x1] = cv2.GC_PR_BGD
    gc[seed] = cv2.GC_PR_FGD
    inner = cv2.erode(seed.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    gc[inner] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    out = fill_holes(seed)
    try:
        cv2.grabCut(np.ascontiguousarray(rgb[:, :, ::-1]), gc, None, bgd, fgd, grabcut_iterations, cv2.GC_INIT_WITH_MASK)
        refined = largest_component(fill_holes((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)))
        if np.count_nonzero(refined) >= 0.5 * np.count_nonzero(seed):
            out = refined
    except cv2.error as exc:  # GrabCut refuses degenerate colour models; the seed region stands
        log.debug("GrabCut failed on a reference image (%s); using the colour-difference mask", exc)
    frac = np.count_nonzero(out) / out.size
    return out if 0.01 <= frac <= 0.95 else whole


@dataclass
class PersonalObject:
    """One enrolled personal object.

    Args:
        name: unique name (directory name).
        category: category word used for proposals ("cup").
        aliases: extra phrases that name it in instructions ("Bob", "the blue mug").
        crops: reference crops with masks.
        embeddings: embedder version -> (R, D) float32 unit embeddings of `crops`.
        directory: where it is stored (None for an unsaved object).
        created: enrolment time, s since the epoch.
        source: where the references came from ("files", "sim:seed=3", ...).
        negatives: crops of look-alikes the user said are not this object.
        rule: the object's own decision rule (None: not derived yet).
        view_origins: per crop, "enrolled" (a reference given at enrolment: never dropped) or
            "online" (a confirmed view added at run time, `add_confirmed_view`: bounded).
        negative_origins: per negative, "enrolled" (a "not mine" photo: never dropped) or
            "online" (a wrong pick the user reported, `add_negative_view`: bounded).
    """

    name: str
    category: str
    aliases: tuple[str, ...] = ()
    crops: list[ObjectCrop] = field(default_factory=list)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    directory: Path | None = None
    created: float = 0.0
    source: str = ""
    negatives: list[ObjectCrop] = field(default_factory=list)
    rule: ObjectRule | None = None
    view_origins: list[str] = field(default_factory=list)
    negative_origins: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.view_origins = list(self.view_origins) + ["enrolled"] * (len(self.crops) - len(self.view_origins))
        self.negative_origins = list(self.negative_origins) + ["enrolled"] * (len(self.negatives) - len(self.negative_origins))

    @property
    def online_views(self) -> int:
        """Confirmed views added at run time."""
        return sum(o == "online" for o in self.view_origins)

    @property
    def online_negatives(self) -> int:
        """Negatives added at run time (wrong picks)."""
        return sum(o == "online" for o in self.negative_origins)


def _sharpness(crop: ObjectCrop) -> float:
    """Variance of the Laplacian of the crop's grey image rescaled to 96 px high (focus measure)."""
    import cv2

    g = cv2.cvtColor(crop.rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = g.shape
    scale = 96.0 / h
    g = cv2.resize(g, (max(8, int(round(w * scale))), 96), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return float(cv2.Laplacian(g, cv2.CV_32F).var())


BLACK_LEVEL = 12.0
"""Mean grey level (0..255) of the object pixels below which a reference is black."""
BLANK_STD = 2.0
"""Grey-level standard deviation over a reference crop below which it holds no detail."""
BLUR_RATIO = 0.2
"""A reference whose sharpness is below this fraction of the median of the others is blurred."""
MIN_SHARPNESS = 2.0
"""Sharpness (variance of the Laplacian at 96 px) below which a reference is out of focus on its own."""
MAX_ONLINE_VIEWS = 8
"""Online confirmed views kept per object (the oldest is dropped for a new one)."""
MAX_ONLINE_NEGATIVES = 8
"""Online negatives (wrong picks) kept per object."""
DUPLICATE_LEVELS = 0.5
"""Two reference crops of the same size that differ by less than this mean level (0..255) are the
same photo (even two shots from one spot differ by their sensor noise, ~2 levels; views of a
symmetric object from different sides are not refused)."""


def _same_view(a: ObjectCrop, b: ObjectCrop) -> bool:
    """The same photo (see DUPLICATE_LEVELS)."""
    return (a.rgb.shape == b.rgb.shape and np.array_equal(a.mask, b.mask)
            and float(np.abs(a.rgb.astype(np.float32) - b.rgb.astype(np.float32)).mean()) < DUPLICATE_LEVELS)


def check_reference_quality(crops: Sequence[ObjectCrop], only: int | None = None) -> None:
    """ValueError, saying which reference and what to do, for a black, blank, blurred or
    duplicate reference crop (see the module constants for the levels). `only`: check just
    that crop (against the others), e.g. a view added later."""
    sharp = [_sharpness(c) for c in crops]
    for i, c in enumerate(crops):
        if only is not None and i != only:
            continue
        grey = c.rgb.astype(np.float32).mean(axis=2)
        level = float(grey[c.mask].mean()) if c.mask.any() else float(grey.mean())
        if level < BLACK_LEVEL:
            raise ValueError(f"reference {i} is black (object brightness {level:.0f}/255): check the exposure and "
                             "the lighting, then take it again")
        if float(grey.std()) < BLANK_STD:
            raise ValueError(f"reference {i} is blank (no detail at all): photograph the object itself")
        if sharp[i] < MIN_SHARPNESS:
            raise ValueError(f"reference {i} is out of focus (sharpness {sharp[i]:.1f} < {MIN_SHARPNESS}): hold the "
                             "camera still and take it again")
        rest = [v for j, v in enumerate(sharp) if j != i]
        if rest and sharp[i] < BLUR_RATIO * float(np.median(rest)):
            raise ValueError(f"reference {i} is blurred (sharpness {sharp[i]:.1f}, the others {np.median(rest):.1f}): "
                             "take it again, in focus")
        for j in range(len(crops)) if only is not None else range(i):
            if j == i:
                continue
            if _same_view(crops[j], c):
                raise ValueError(f"reference {i} is a duplicate of reference {j}: give views of the object from "
                                 "different sides")


class PersonalObjectMemory:
    """Enrol, list, load and remove personal objects under one root directory.

    Args:
        root: memory directory (created on the first enrolment); None = `default_root()`.
        read_only_roots: further directories objects are read from (never written) when `root`
            has no object of that name. None = the installation's `config/personal_objects/`
            when `root` is the default user memory, else none.
    """

    def __init__(self, root: str | Path | None = None, read_only_roots: Sequence[str | Path] | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_root()
        if read_only_roots is None:
            installed = installed_root() if self.root == default_root(create=False) else None
            read_only_roots = [installed] if installed is not None and installed.resolve() != self.root.resolve() else []
        self.read_only_roots = tuple(Path(r).expanduser() for r in read_only_roots)
        self._cache: dict[str, PersonalObject] = {}

    # ---- queries -------------------------------------------------------------------------
    @staticmethod
    def _names_in(root: Path) -> list[str]:
        if not root.is_dir():
            return []
        return [p.name for p in root.iterdir() if (p / META_FILE).is_file() and NAME_RE.match(p.name)]

    def names(self) -> list[str]:
        """Names of the enrolled objects (sorted; the writable root and the read-only roots together)."""
        found = set(self._names_in(self.root))
        for root in self.read_only_roots:
            found.update(self._names_in(root))
        return sorted(found)

    def _directory(self, name: str) -> Path | None:
        """Directory of object `name`: the writable root first, then the read-only roots (warning)."""
        if (self.root / name / META_FILE).is_file():
            return self.root / name
        for root in self.read_only_roots:
            if (root / name / META_FILE).is_file():
                log.warning(
                    "personal object '%s' is read from %s, inside the installation (a rebuild or reinstall "
                    "replaces it; nothing is written there): if it is yours, move it to your data directory: "
                    "mv %s %s/", name, root / name, root / name, self.root)
                return root / name
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def get(self, name: str) -> PersonalObject:
        """The object `name` (loaded from disk once, then cached). KeyError listing the enrolled names."""
        check_name(name)
        if name in self._cache:
            return self._cache[name]
        directory = self._directory(name)
        if directory is None:
            raise KeyError(f"no personal object '{name}' in {self.root} (enrolled: {self.names() or 'none'})")
        obj = self._load(directory)
        self._cache[name] = obj
        return obj

    def objects(self) -> list[PersonalObject]:
        """Every enrolled object (objects that fail to load are logged and skipped)."""
        out = []
        for n in self.names():
            try:
                out.append(self.get(n))
            except (ValueError, KeyError, OSError) as exc:
                log.error("personal object '%s' in %s cannot be loaded (%s); skipping it", n, self.root, exc)
        return out

    def reference_embeddings(self, name: str, embedder: Embedder) -> np.ndarray:
        """(R, D) embeddings of `name`'s references by `embedder`, computed and saved when missing."""
        obj = self.get(name)
        version = embedder.version
        if version not in obj.embeddings:
            obj.embeddings[version] = embedder.embed_crops(obj.crops).astype(np.float32)
            if obj.directory is not None and obj.directory.parent == self.root:  # read-only roots stay untouched
                try:
                    self._write_meta(obj)
                except OSError as exc:
                    log.warning("cannot store %s embeddings of '%s' (%s); kept in memory only", embedder.name, name, exc)
        return obj.embeddings[version]

    # ---- changes -------------------------------------------------------------------------
    def enroll(
        self,
        name: str,
        images: Sequence[np.ndarray | str | Path],
        category: str,
        embedder: Embedder,
        aliases: Sequence[str] = (),
        masks: Sequence[np.ndarray | None] | None = None,
        overwrite: bool = False,
        source: str = "",
        not_mine: Sequence[np.ndarray | str | Path] = (),
        self_calibrate: bool = False,
        top_k: int = 2,
    ) -> PersonalObject:
        """Enrol (or with `overwrite`, replace) a personal object from reference images.

        With `self_calibrate` (what `vla-stack enroll` and the `grounding/enroll` topic do) the
        reference photos are checked first (black, blank, blurred, duplicate: ValueError saying
        which and what to do), the object's own decision rule is derived
        (`self_calibration.derive_rule`, negatives: generated look-alikes, the other enrolled
        objects, `not_mine`) and stored, and an object that looks identical to one already
        enrolled is refused. Without it (the lab's evaluations) enrolment is as before; the rule
        is then derived when a "per_object" decision first needs it (`decision_rule`).

        Args:
            name: object name (see NAME_RE).
            images: RGB/RGBA arrays or image file paths; 1..64 of them.
            category: category word ("cup"); proposals are made for it.
            embedder: computes the stored embeddings.
            aliases: other phrases that name the object in instructions.
            masks: optional object mask per image (None entries = segment automatically).
            overwrite: replace an existing object of that name.
            source: provenance note stored in object.json.
            not_mine: photos (arrays or paths) of look-alikes that are not this object; stored
                with it as negatives of its rule (whole photos are segmented like references).
            self_calibrate: check the photos and derive the object's own rule (see above).
            top_k: the matcher's ensemble top-k the rule is derived for (`MatchConfig.top_k`).

        Returns:
            The stored PersonalObject.

        Raises:
            ValueError: bad name/category/image, name taken without `overwrite`; with
                `self_calibrate`: a bad photo or an object identical to an enrolled one.
            OSError: the memory directory is not writable.
        """
        check_name(name)
        category = category.strip().lower() if isinstance(category, str) else ""
        if not re.fullmatch(r"[a-z][a-z \-]{0,31}", category):
            raise ValueError(f"category must be a word like 'cup' or 'water bottle', got {category!r}")
        if not 1 <= len(images) <= 64:
            raise ValueError(f"enrolment needs 1..64 reference images, got {len(images)}")
        if masks is not None and len(masks) != len(images):
            raise ValueError(f"{len(masks)} masks for {len(images)} images")
        clean_aliases = tuple(dict.fromkeys(a.strip() for a in aliases if isinstance(a, str) and a.strip()))
        directory = self.root / name
        if (directory / META_FILE).exists() and not overwrite:
            raise ValueError(f"personal object '{name}' already exists in {self.root}; pass overwrite to replace it")

        crops = [self._crop(item, masks[i] if masks is not None else None, f"reference {i}") for i, item in enumerate(images)]
        negatives = [self._crop(item, None, f"'not mine' photo {i}") for i, item in enumerate(not_mine)]
        if self_calibrate:
            if len(self._paths(images)) != len(set(self._paths(images))):
                raise ValueError("the same reference image file is given twice: give views from different sides")
            check_reference_quality(crops)
        obj = PersonalObject(
            name=name, category=category, aliases=clean_aliases, crops=crops,
            embeddings={embedder.version: embedder.embed_crops(crops).astype(np.float32)},
            directory=directory, created=time.time(), source=source or "images", negatives=negatives,
        )
        if self_calibrate:
            report = self._derive(obj, embedder, top_k)
            if report.identical:
                other, score = report.identical[0]
                raise ValueError(
                    f"'{name}' looks identical to the enrolled object '{other}' (it scores {score:.3f} against the new "
                    f"references, as high as the new object's own views): the stack could not tell them apart. Enrol a "
                    f"different object, or replace '{other}' (vla-stack enroll {other} ... --overwrite)")
            obj.rule = report.rule
        self._save(obj, overwrite)
        self._cache[name] = obj
        log.info("enrolled personal object '%s' (%s) from %d reference image(s) in %s", name, category, len(crops), directory)
        return obj

    @staticmethod
    def _paths(items: Sequence[object]) -> list[Path]:
        return [Path(i).expanduser().resolve() for i in items if isinstance(i, (str, Path))]

    @staticmethod
    def _crop(item: np.ndarray | str | Path, given: np.ndarray | None, what: str) -> ObjectCrop:
        """The object cut out of one photo (given mask, alpha, or `segment_reference`)."""
        img = load_image(item) if isinstance(item, (str, Path)) else item
        if not isinstance(img, np.ndarray):
            raise ValueError(f"{what} is neither an image array nor a path")
        mask = np.asarray(given, bool) if given is not None else segment_reference(img)
        try:
            return crop_object(img[:, :, :3] if img.ndim == 3 else img, mask, pad=0.05)
        except InvalidImage as exc:
            raise ValueError(f"{what}: {exc}") from exc

    def _derive(self, obj: PersonalObject, embedder: Embedder, top_k: int) -> CalibrationReport:
        """`self_calibration.derive_rule` for `obj` against the other enrolled objects of its category."""
        from vla_stack.core.grounding.self_calibration import derive_rule

        others = {name: self.reference_embeddings(name, embedder) for name in self._others(obj)}
        report = derive_rule(obj.crops, embedder, top_k, references=obj.embeddings.get(embedder.version),
                             others=others, not_mine=obj.negatives)
        for w in report.rule.warnings:
            log.warning("personal object '%s': %s", obj.name, w)
        return report

    def _others(self, obj: PersonalObject) -> list[str]:
        """Names of the other enrolled objects of `obj`'s category (its negatives)."""
        return [o.name for o in self.objects() if o.name != obj.name and o.category == obj.category]

    def decision_rule(self, name: str, embedder: Embedder, top_k: int = 2) -> ObjectRule:
        """The object's own decision rule for `embedder` (decision mode "per_object").

        A stored rule made for another embedder version, top-k or derivation version is stale:
        it is re-derived (a warning says so) and stored when the object lives in the writable
        memory. So is one derived before another object of its category was enrolled or
        removed (those are its negatives). Other enrolled objects that look identical to it are
        left out of its negatives (a warning says so) instead of making it unfindable.
        """
        obj = self.get(name)
        others = sorted(self._others(obj))
        if obj.rule is not None and obj.rule.is_current(embedder.version, top_k):
            if list(obj.rule.objects) == others:
                return obj.rule
            log.info("the enrolled objects changed since the decision rule of '%s' was derived (%s -> %s): "
                     "re-deriving it", name, list(obj.rule.objects) or "none", others or "none")
        elif obj.rule is not None:
            log.warning("the decision rule of '%s' was derived for embedder %s (top-k %d), not %s (top-k %d): "
                        "re-deriving it from its references", name, obj.rule.embedder_version, obj.rule.top_k,
                        embedder.version, top_k)
        else:
            log.info("personal object '%s' has no decision rule yet: deriving it from its references", name)
        self.reference_embeddings(name, embedder)
        obj.rule = self._derive(obj, embedder, top_k).rule
        if obj.directory is not None and obj.directory.parent == self.root:
            try:
                self._write_meta(obj)
            except OSError as exc:
                log.warning("cannot store the decision rule of '%s' (%s); kept in memory only", name, exc)
        return obj.rule

    # ---- online confirmation -------------------------------------------------------------
    def _writable(self, name: str) -> PersonalObject:
        obj = self.get(name)
        if obj.directory is None or obj.directory.parent != self.root:
            raise ValueError(f"personal object '{name}' is read from {obj.directory}, outside the writable memory "
                             f"{self.root}: nothing is added there (move it to {self.root} first)")
        return obj

    def add_confirmed_view(self, name: str, crop: ObjectCrop, embedder: Embedder, top_k: int = 2,
                           max_online: int = MAX_ONLINE_VIEWS, source: str = "") -> PersonalObject:
        """Add a confirmed view of object `name` (a user's choice or confirmation, a successful pick).

        Bounded: at most `max_online` online views; the oldest online view is dropped for a new
        one, the enrolled references never. The crop is checked like an enrolment photo (black,
        blank, out of focus, blurred against the other views, a duplicate of one: ValueError saying
        which), the object's own decision rule is re-derived with it (`self_calibration`), and the
        object is rewritten as a whole (a temporary directory renamed into place): a refusal or
        a failure leaves the stored object as it was.

        Returns:
            The updated object.

        Raises:
            ValueError: a bad crop, `max_online` < 1, an object outside the writable memory.
            KeyError: no object of that name.
            OSError: the memory is not writable.
        """
        if max_online < 1:
            raise ValueError(f"max_online must be >= 1, got {max_online}")
        obj = self._writable(name)
        crop = self._check_crop(crop, "confirmed view")
        crops, origins = [*obj.crops, crop], [*obj.view_origins, "online"]
        try:
            check_reference_quality(crops, only=len(crops) - 1)
        except ValueError as exc:
            raise ValueError(f"confirmed view refused: {str(exc).replace(f'reference {len(crops) - 1}', 'the new view')}") from exc
        emb = {v: np.vstack([a, embedder.embed_crops([crop]).astype(np.float32)]) if v == embedder.version else None
               for v, a in obj.embeddings.items()}
        if embedder.version not in emb:
            emb[embedder.version] = embedder.embed_crops(crops).astype(np.float32)
        embeddings = {v: a for v, a in emb.items() if a is not None}  # other embedders' vectors are recomputed when needed
        while sum(o == "online" for o in origins) > max_online:
            k = origins.index("online")  # the oldest online view
            del crops[k], origins[k]
            embeddings = {v: np.delete(a, k, axis=0) for v, a in embeddings.items()}
        new = replace(obj, crops=crops, view_origins=origins, embeddings=embeddings, negatives=list(obj.negatives),
                      negative_origins=list(obj.negative_origins), rule=None)
        return self._rederive_and_store(new, embedder, top_k, f"confirmed view ({source or 'online'})")

    def add_negative_view(self, name: str, crop: ObjectCrop, embedder: Embedder, top_k: int = 2,
                          max_online: int = MAX_ONLINE_NEGATIVES, source: str = "") -> PersonalObject:
        """Add a negative of object `name`: the crop of an instance that is *not* it (a wrong pick,
        "not that one"). Bounded like `add_confirmed_view` (the enrolled "not mine" photos are
        never dropped); the crop is checked (black, blank, out of focus), the rule re-derived and
        the object rewritten as a whole; a refusal leaves it as it was.

        Raises:
            ValueError: a bad crop, a crop identical to one of the object's own views, `max_online`
                < 1, an object outside the writable memory.
            KeyError: no object of that name.
        """
        if max_online < 1:
            raise ValueError(f"max_online must be >= 1, got {max_online}")
        obj = self._writable(name)
        crop = self._check_crop(crop, "negative")
        # an online view that is this very crop was a wrong confirmation (the pick of a look-alike
        # confirmed it, then the user said "not that one"): it is withdrawn, the negative replaces it
        crops, view_origins = list(obj.crops), list(obj.view_origins)
        embeddings = dict(obj.embeddings)
        withdrawn = [k for k, (c, o) in enumerate(zip(crops, view_origins, strict=True))
                     if o == "online" and _same_view(c, crop)]
        for k in reversed(withdrawn):
            del crops[k], view_origins[k]
            embeddings = {v: np.delete(a, k, axis=0) for v, a in embeddings.items()}
        try:
            check_reference_quality([*crops, crop], only=len(crops))
        except ValueError as exc:
            msg = str(exc).replace(f"reference {len(crops)}", "the negative")
            if "duplicate" in msg:
                msg = ("the negative is one of the object's enrolled views: a view cannot be both mine and not mine "
                       "(re-enrol the object if that reference is wrong)")
            raise ValueError(f"negative refused: {msg}") from exc
        negatives, origins = [*obj.negatives, crop], [*obj.negative_origins, "online"]
        while sum(o == "online" for o in origins) > max_online:
            k = origins.index("online")
            del negatives[k], origins[k]
        new = replace(obj, crops=crops, view_origins=view_origins, negatives=negatives,
                      negative_origins=origins, embeddings=embeddings, rule=None)
        what = f"negative ({source or 'online'})" + (
            f", withdrawing the {len(withdrawn)} online view(s) that had confirmed it" if withdrawn else "")
        return self._rederive_and_store(new, embedder, top_k, what)

    @staticmethod
    def _check_crop(crop: object, what: str) -> ObjectCrop:
        if not isinstance(crop, ObjectCrop):
            raise ValueError(f"{what} refused: not an object crop ({type(crop).__name__})")
        try:
            rgb = check_rgb(crop.rgb)
        except InvalidImage as exc:
            raise ValueError(f"{what} refused: {exc}") from exc
        mask = np.asarray(crop.mask, bool)
        if mask.shape != rgb.shape[:2] or not mask.any():
            raise ValueError(f"{what} refused: its mask is empty or does not match the image")
        return ObjectCrop(rgb, mask)

    def _rederive_and_store(self, obj: PersonalObject, embedder: Embedder, top_k: int, what: str) -> PersonalObject:
        report = self._derive(obj, embedder, top_k)
        obj.rule = report.rule
        self._save(obj, overwrite=True)
        self._cache[obj.name] = obj
        log.info("personal object '%s': added a %s; %d views (%d online), %d negatives (%d online); rule re-derived "
                 "(floor %.3f, margin %.3f)", obj.name, what, len(obj.crops), obj.online_views, len(obj.negatives),
                 obj.online_negatives, obj.rule.accept_threshold, obj.rule.margin)
        return obj

    def remove(self, name: str) -> None:
        """Delete the object `name` and its files. KeyError when it is not enrolled."""
        check_name(name)
        directory = self.root / name
        if not (directory / META_FILE).is_file():
            elsewhere = [str(r / name) for r in self.read_only_roots if (r / name / META_FILE).is_file()]
            hint = f" (only in the read-only {', '.join(elsewhere)}: delete it there by hand)" if elsewhere else ""
            raise KeyError(f"no personal object '{name}' in {self.root}{hint}")
        shutil.rmtree(directory)
        self._cache.pop(name, None)

    # ---- storage -------------------------------------------------------------------------
    @staticmethod
    def _emb_file(version: str) -> str:
        return f"emb_{hashlib.sha1(version.encode()).hexdigest()[:12]}.npy"

    def _save(self, obj: PersonalObject, overwrite: bool) -> None:
        import cv2

        assert obj.directory is not None
        tmp = obj.directory.with_name(f".{obj.name}.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        real_dir = obj.directory
        try:
            refs = []
            for i, crop in enumerate(obj.crops):
                img_f, mask_f = f"ref_{i:02d}.png", f"ref_{i:02d}_mask.png"
                if not cv2.imwrite(str(tmp / img_f), np.ascontiguousarray(crop.rgb[:, :, ::-1])):
                    raise OSError(f"cannot write {tmp / img_f}")
                cv2.imwrite(str(tmp / mask_f), crop.mask.astype(np.uint8) * 255)
                refs.append({"image": img_f, "mask": mask_f, **({"online": True} if obj.view_origins[i] == "online" else {})})
            for i, crop in enumerate(obj.negatives):
                img_f, mask_f = f"neg_{i:02d}.png", f"neg_{i:02d}_mask.png"
                if not cv2.imwrite(str(tmp / img_f), np.ascontiguousarray(crop.rgb[:, :, ::-1])):
                    raise OSError(f"cannot write {tmp / img_f}")
                cv2.imwrite(str(tmp / mask_f), crop.mask.astype(np.uint8) * 255)
            obj.directory = tmp
            self._write_meta(obj, refs)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            obj.directory = real_dir
        old = real_dir.with_name(f".{obj.name}.old")
        if real_dir.exists():
            if not overwrite:
                shutil.rmtree(tmp)
                raise ValueError(f"personal object '{obj.name}' already exists")
            if old.exists():
                shutil.rmtree(old)
            real_dir.rename(old)  # the old object stays whole until the new one is in place
        tmp.rename(real_dir)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)

    def _write_meta(self, obj: PersonalObject, refs: list[dict] | None = None) -> None:
        assert obj.directory is not None
        if refs is None:
            refs = [{"image": f"ref_{i:02d}.png", "mask": f"ref_{i:02d}_mask.png",
                     **({"online": True} if obj.view_origins[i] == "online" else {})} for i in range(len(obj.crops))]
        emb = {}
        for version, arr in obj.embeddings.items():
            fname = self._emb_file(version)
            np.save(obj.directory / fname, np.asarray(arr, np.float32))
            emb[version] = fname
        meta = {
            "format": FORMAT_VERSION,
            "name": obj.name,
            "category": obj.category,
            "aliases": list(obj.aliases),
            "created": obj.created,
            "source": obj.source,
            "references": refs,
            "embeddings": emb,
        }
        if obj.negatives:
            meta["negatives"] = [{"image": f"neg_{i:02d}.png", "mask": f"neg_{i:02d}_mask.png",
                                  **({"online": True} if obj.negative_origins[i] == "online" else {})}
                                 for i in range(len(obj.negatives))]
        if obj.rule is not None:
            meta["decision_rule"] = obj.rule.to_dict()
        tmp = obj.directory / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        tmp.replace(obj.directory / META_FILE)  # atomic: a reader sees the old or the new file

    def _load(self, directory: Path) -> PersonalObject:
        import cv2

        meta = json.loads((directory / META_FILE).read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{directory / META_FILE} has format {meta.get('format')!r}, expected {FORMAT_VERSION}")
        def read(entries: list[dict]) -> list[ObjectCrop]:
            out = []
            for ref in entries:
                bgr = cv2.imread(str(directory / ref["image"]), cv2.IMREAD_COLOR)
                m = cv2.imread(str(directory / ref["mask"]), cv2.IMREAD_GRAYSCALE)
                if bgr is None or m is None or m.shape != bgr.shape[:2]:
                    raise ValueError(f"reference {ref['image']} / {ref['mask']} in {directory} is missing or unreadable")
                out.append(ObjectCrop(np.ascontiguousarray(bgr[:, :, ::-1]), m > 127))
            return out

        crops = read(meta["references"])
        negatives = read(meta.get("negatives", []))
        rule = None
        if "decision_rule" in meta:
            try:
                rule = ObjectRule.from_dict(meta["decision_rule"])
            except ValueError as exc:
                log.warning("ignoring the decision rule of %s (%s); it is re-derived when needed", directory, exc)
        embeddings = {}
        for version, fname in meta.get("embeddings", {}).items():
            arr = np.load(directory / fname)
            if arr.ndim == 2 and arr.shape[0] == len(crops):
                embeddings[version] = arr.astype(np.float32)
        return PersonalObject(
            name=meta["name"], category=meta["category"], aliases=tuple(meta.get("aliases", ())),
            crops=crops, embeddings=embeddings, directory=directory,
            created=float(meta.get("created", 0.0)), source=str(meta.get("source", "")),
            negatives=negatives, rule=rule,
            view_origins=["online" if r.get("online") else "enrolled" for r in meta["references"]],
            negative_origins=["online" if r.get("online") else "enrolled" for r in meta.get("negatives", [])],
        )
