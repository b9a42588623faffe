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

from vla_stack.core.registry import Registry

T = typing.TypeVar("T")


def declare_parameters(node: Node, spec: Mapping[str, tuple[Any, str]]) -> dict[str, Any]:
    """Declare `{name: (default, description)}` and return the current values.

    Every parameter is declared with dynamic typing, so `fps: 30` (int) works for a float
    parameter (`config_from_parameters` converts it) and a list parameter may be empty:
    ROS has no typed empty array (a YAML `[]` arrives as "not set"), so an empty default or an
    empty override reads back as the default's empty sequence. Sequence values come back in
    the default's kind: a tuple default gives a tuple, a list default a list.
    """
    values = {}
    for name, (default, description) in spec.items():
        descriptor = ParameterDescriptor(description=description, dynamic_typing=True)
        declared = list(default) if isinstance(default, tuple) else default
        values[name] = _sequence_kind(node.declare_parameter(name, declared, descriptor).value, default)
    return values


def _sequence_kind(value: Any, default: Any) -> Any:
    """`value` as the default's kind of sequence (None, i.e. an empty YAML list -> empty)."""
    if not isinstance(default, list | tuple):
        return value
    if value is None:
        return type(default)()
    if isinstance(value, list | tuple) or hasattr(value, "tolist"):  # rclpy arrays may be array.array
        return type(default)(value.tolist() if hasattr(value, "tolist") else value)
    return value


def dataclass_parameter_spec(
    cls: type, skip: Iterable[str] = (), prefix: str = ""
) -> dict[str, tuple[Any, str]]:
    """`{prefix+field: (default, help)}` of a config dataclass (help from field metadata).

    A field whose default is itself a config dataclass becomes `prefix+field.` parameters of its
    own fields; a field with `metadata={"parameter": False}` is not a parameter.
    """
    spec = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or f.metadata.get("parameter", True) is False:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            spec.update(dataclass_parameter_spec(type(default), prefix=f"{prefix}{f.name}."))
            continue
        spec[prefix + f.name] = (default, f.metadata.get("help", f.name))
    return spec


def backend_parameter_spec(registry: Registry) -> dict[str, tuple[Any, str]]:
    """`<backend>.<field>` parameters of every backend in `registry` that carries a config class."""
    spec: dict[str, tuple[Any, str]] = {}
    for name in registry.names():
        cls = registry.config_class(name)
        if cls is not None:
            spec.update(dataclass_parameter_spec(cls, prefix=f"{name}."))
    return spec


def backend_config_from_parameters(registry: Registry, name: str, values: Mapping[str, Any], logger) -> Any:
    """The config of backend `name` from its `<name>.*` parameters (None if it carries no config class);
    bad values are logged and replaced by defaults as in `config_from_parameters`."""
    cls = registry.config_class(name)
    return None if cls is None else config_from_parameters(cls, values, logger, prefix=f"{name}.")


def _coerce(value: Any, default: Any) -> Any:
    if isinstance(default, tuple | list):
        if value is None:
            return type(default)()
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ValueError(f"expected a list, got {value!r}")
        items = list(value)
        if default and not isinstance(default[0], tuple | list):  # elements like the default's
            items = [_coerce(v, default[0]) for v in items]
        return type(default)(items)
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
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(default) and f.metadata.get("parameter", True) is not False:
            if any(k.startswith(f"{prefix}{name}.") for k in values):
                kwargs[name] = config_from_parameters(type(default), values, logger, prefix=f"{prefix}{name}.")
            continue
        if prefix + name not in values:
            continue
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
