"""ROS 2 message definitions as MCAP `ros2msg` schemas, read from .msg files without a ROS install.

Where the .msg files are: every ROS 2 interface package installs its definitions as
`<prefix>/share/<package>/msg/<Type>.msg` (next to the generated .idl and .json files). The
PyPI wheels of the ROS 2 message packages (ros-std-msgs, ros-sensor-msgs, ...) keep that
layout under the environment's prefix, e.g. `.venv/share/std_msgs/msg/String.msg`; a ROS 2
install has them under `/opt/ros/<distro>/share/...` (listed in AMENT_PREFIX_PATH). So the
search roots are: AMENT_PREFIX_PATH entries, `sys.prefix` and `sys.base_prefix` (plus any
given explicitly); `<root>/share/<package>/msg/<Type>.msg` is tried in that order.

The `ros2msg` schema of a type is its .msg text followed by the text of every message type it
uses, recursively, each after a separator line of 80 '=' and a line `MSG: <package>/<Type>`
(the concatenation rosbag2 writes and Foxglove and mcap-ros2-support read).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

PRIMITIVE_TYPES = frozenset(
    "bool byte char float32 float64 int8 uint8 int16 uint16 int32 uint32 int64 uint64 string wstring".split()
)
"""Built-in field types of the .msg language (no definition file)."""

SEPARATOR = "=" * 80


class MessageDefinitionError(LookupError):
    """A message type's definition cannot be found or read; the text says where it looked."""


def split_type_name(type_name: str) -> tuple[str, str]:
    """("std_msgs", "String") from "std_msgs/msg/String" or "std_msgs/String".

    Raises MessageDefinitionError for anything else (services, actions, malformed names).
    """
    parts = [p for p in str(type_name).strip().split("/") if p]
    if len(parts) == 3 and parts[1] == "msg":
        return parts[0], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise MessageDefinitionError(f"'{type_name}' is not a message type name (expected package/msg/Type)")


def default_search_roots(extra: Iterable[str | Path] = ()) -> list[Path]:
    """Install prefixes that may hold share/<package>/msg/*.msg, in search order (no duplicates)."""
    roots: list[Path] = [Path(p) for p in extra]
    roots += [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    roots += [Path(sys.prefix), Path(sys.base_prefix)]
    seen, out = set(), []
    for r in roots:
        key = str(r.resolve()) if r.exists() else str(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def field_types(text: str) -> list[str]:
    """The field type tokens of a .msg text (constants and comments skipped, array/bound suffixes removed)."""
    types = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            continue
        type_token, name = parts[0], parts[1]
        if "=" in name or (len(parts) > 2 and parts[2].lstrip().startswith("=")):
            continue  # constant: always a primitive
        base = re.sub(r"\[.*\]$", "", type_token)
        base = re.sub(r"<=\d+$", "", base)
        types.append(base)
    return types


class MessageDefinitions:
    """Finds .msg files and builds `ros2msg` schema text (cached per type).

    Args:
        roots: install prefixes to search (default: `default_search_roots()`).
    """

    def __init__(self, roots: Iterable[str | Path] | None = None) -> None:
        self.roots = [Path(r) for r in roots] if roots is not None else default_search_roots()
        self._schemas: dict[str, str] = {}

    def definition_file(self, type_name: str) -> Path:
        """Path of the .msg file of `type_name`; MessageDefinitionError naming the searched places."""
        pkg, name = split_type_name(type_name)
        tried = []
        for root in self.roots:
            path = root / "share" / pkg / "msg" / f"{name}.msg"
            if path.is_file():
                return path
            tried.append(str(path))
        idl = [str(root / "share" / pkg / "msg" / f"{name}.idl") for root in self.roots
               if (root / "share" / pkg / "msg" / f"{name}.idl").is_file()]
        hint = f" (only {idl[0]} exists: .idl-only types cannot be written as ros2msg)" if idl else ""
        raise MessageDefinitionError(
            f"no definition of {pkg}/msg/{name}{hint}; looked in: {', '.join(tried) or 'no search roots'}"
        )

    def dependencies(self, type_name: str) -> list[str]:
        """Every message type `type_name` uses, recursively, depth-first, as "pkg/msg/Type"."""
        order: list[str] = []
        self._collect(type_name, order, set())
        return order[1:]

    def _collect(self, type_name: str, order: list[str], seen: set[str]) -> None:
        pkg, name = split_type_name(type_name)
        full = f"{pkg}/msg/{name}"
        if full in seen:
            return
        seen.add(full)
        order.append(full)
        text = self.definition_file(full).read_text()
        for t in field_types(text):
            if t in PRIMITIVE_TYPES:
                continue
            dep = t if "/" in t else f"{pkg}/{t}"  # unqualified = same package
            dep_pkg, dep_name = split_type_name(dep)
            self._collect(f"{dep_pkg}/msg/{dep_name}", order, seen)

    def schema_text(self, type_name: str) -> str:
        """The `ros2msg` schema of `type_name` (its definition plus all dependencies)."""
        pkg, name = split_type_name(type_name)
        full = f"{pkg}/msg/{name}"
        if full not in self._schemas:
            parts = [self.definition_file(full).read_text().rstrip("\n")]
            for dep in self.dependencies(full):
                dep_pkg, dep_name = split_type_name(dep)
                parts.append(f"{SEPARATOR}\nMSG: {dep_pkg}/{dep_name}\n{self.definition_file(dep).read_text().rstrip()}")
            self._schemas[full] = "\n".join(parts) + "\n"
        return self._schemas[full]
