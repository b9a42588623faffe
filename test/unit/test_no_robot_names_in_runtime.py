"""Runtime code names no particular robot: every robot fact comes from a robot profile.

The robot-specific names and numbers live in `config/robots/<robot>.yaml` (loaded by
`vla_stack.core.robot_profile`) and in each robot's own asset modules. This test scans the
runtime packages (`vla_stack.core`, `vla_stack.ros`) for robot names, in code identifiers and
string literals as well as in comments and docstrings, so a constant such as `PANDA_ARM_JOINTS`
or a string such as "panda_link0" cannot creep back in. Lab code (`vla_stack.lab`, `bench/`)
may name the default robot and is not scanned.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import vla_stack

ROBOT_NAMES = re.compile(r"panda|franka|ur5|xarm|so101|so-101", re.IGNORECASE)
"""Names of robots the stack knows today (case-insensitive, also inside longer identifiers)."""

PACKAGE = Path(vla_stack.__file__).resolve().parent
RUNTIME = (PACKAGE / "core", PACKAGE / "ros")

EXEMPT_FILES = {
    "core/kinematics/assets.py",  # the Panda's URDF shipped in the pybullet wheel (its asset module)
    "core/sim/robots/panda.py",  # the Panda's simulation tuning (gains, colours)
}
"""The Panda's own asset modules: the only runtime files allowed to name it."""

ALLOWED_LINES = {
    # the one place the stack names its default robot (the `robot` parameter default of every node)
    ("core/robot_profile.py", 'DEFAULT_ROBOT = "panda"  # robot-name-allowed: the one place the stack names its default robot'),
}
"""(file, stripped line) pairs allowed to name a robot: keep this list tiny."""


def _violations(path: Path, rel: str) -> list[str]:
    """Lines of `path` with a robot name in a name, string or comment token."""
    text = path.read_text()
    lines = text.splitlines()
    found: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type not in (tokenize.NAME, tokenize.STRING, tokenize.COMMENT, getattr(tokenize, "FSTRING_MIDDLE", -1)):
            continue
        if not ROBOT_NAMES.search(tok.string):
            continue
        for row in range(tok.start[0], tok.end[0] + 1):
            line = lines[row - 1].strip()
            if ROBOT_NAMES.search(line) and (rel, line) not in ALLOWED_LINES:
                found[row] = line
    return [f"{rel}:{row}: {line}" for row, line in sorted(found.items())]


def scan_runtime(root: Path = PACKAGE) -> list[str]:
    """Every robot name in runtime code outside the exempt files, as 'file:line: text'."""
    out: list[str] = []
    for base in RUNTIME:
        for path in sorted((root / base.relative_to(PACKAGE)).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel not in EXEMPT_FILES:
                out += _violations(path, rel)
    return out


def test_runtime_code_names_no_robot():
    found = scan_runtime()
    assert not found, (
        "robot-specific names in runtime code (take them from the RobotProfile, "
        "vla_stack.core.robot_profile, or move asset code into the robot's own asset module):\n" + "\n".join(found)
    )


def test_the_scan_sees_identifiers_strings_and_comments(tmp_path):
    """The scanner itself: a robot name in any of the three places is reported, others are not."""
    core = tmp_path / "core"
    core.mkdir()
    (tmp_path / "ros").mkdir()
    (core / "bad.py").write_text(
        "from x import FRANKA_JOINTS\n"  # identifier
        'frame = "ur5e_base"\n'  # string
        "# the So101 gripper\n"  # comment
        "ok = 'base_link'\n"
    )
    found = scan_runtime(tmp_path)
    assert [f.split(":")[1] for f in found] == ["1", "2", "3"], found


def test_exempt_files_and_allowed_lines_exist():
    """The allow-lists do not outlive the code they excuse."""
    for rel in EXEMPT_FILES:
        assert (PACKAGE / rel).is_file(), rel
    for rel, line in ALLOWED_LINES:
        assert line in [x.strip() for x in (PACKAGE / rel).read_text().splitlines()], (rel, line)
