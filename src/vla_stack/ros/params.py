"""Node parameters <-> config dataclasses.

Every node declares its config dataclass's fields as ROS parameters with the field's help text
as the description (so `ros2 param describe` explains them), and builds the dataclass back from
the values; a bad value is logged with the reason and replaced by its default, never fatal.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

T = typing.TypeVar("T")


def declare_parameters(node: Node, spec: Mapping[str, tuple[Any, str]]) -> dict[str, Any]:
    """Declare `{name: (default, description)}` and return the current values.

    Numbers are declared with dynamic typing so `fps: 30` (int) works for a float parameter;
    `coerce_values` converts them afterwards.
    """
    values = {}
    for name, (default, description) in spec.items():
        descriptor = ParameterDescriptor(description=description, dynamic_typing=True)
        values[name] = node.declare_parameter(name, default, descriptor).value
    return values


def dataclass_parameter_spec(
    cls: type, skip: Iterable[str] = (), prefix: str = ""
) -> dict[str, tuple[Any, str]]:
    """`{prefix+field: (default, help)}` of a config dataclass (help from field metadata)."""
    spec = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        spec[prefix + f.name] = (default, f.metadata.get("help", f.name))
    return spec


def _coerce(value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"expected true/false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError(f"expected an integer, got {value!r}")
        return int(float(value))
    if isinstance(default, float):
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        return str(value)
    return value


def config_from_parameters(cls: type[T], values: Mapping[str, Any], logger, prefix: str = "") -> T:
    """Build config dataclass `cls` from parameter values; a value that is the wrong type or fails
    the dataclass's validation is logged (one line each) and replaced by the field default."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if prefix + name not in values:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        try:
            kwargs[name] = _coerce(values[prefix + name], default)
        except (TypeError, ValueError) as exc:
            logger.error(
                f"parameter {prefix}{name}={values[prefix + name]!r} rejected ({exc}); using the default {default!r}"
            )
    try:
        return cls(**kwargs)
    except ValueError as exc:
        first_error = str(exc)
    # find the offending value(s): add them one at a time, keep those that validate
    accepted: dict[str, Any] = {}
    for name, value in kwargs.items():
        try:
            cls(**{**accepted, name: value})
            accepted[name] = value
        except ValueError as exc:
            default = fields[name].default
            logger.error(
                f"parameter {prefix}{name}={value!r} rejected ({exc}); using the default {default!r}"
            )
    try:
        return cls(**accepted)
    except ValueError:  # values valid alone but not together
        logger.error(f"parameters rejected ({first_error}); using all defaults of {cls.__name__}")
        return cls()


def bounded_float(values: Mapping[str, Any], name: str, lo: float, hi: float, default: float, logger) -> float:
    """`values[name]` as a float in [lo, hi]; anything else is logged with the reason and replaced by `default`."""
    try:
        v = float(values[name])
        if lo <= v <= hi:
            return v
    except (TypeError, ValueError):
        pass
    logger.error(f"parameter {name}={values[name]!r} rejected (need {lo}..{hi}); using {default}")
    return default


def ros_seconds(node: Node) -> float:
    """The node's clock (ROS time, or sim time with use_sim_time) in float seconds."""
    return node.get_clock().now().nanoseconds * 1e-9
