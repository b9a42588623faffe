"""One small registry so backends are picked by name from config files and flags.

    DETECTORS = Registry("detector")

    @DETECTORS.register("depth_clusters")
    class DepthClusterDetector: ...

    det = DETECTORS.create("depth_clusters", min_points=50)

A backend may register its config dataclass too (`@POLICIES.register("builtin",
config=BuiltinExpertConfig)`): nodes then declare its fields as parameters (`<name>.<field>`,
help text from field metadata) and build it without knowing the backend
(`vla_stack.ros.params.backend_parameter_spec`).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any


class Registry:
    """Maps a string `type` to a class or factory.

    Args:
        kind: what is registered ("detector", "policy", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}
        self._configs: dict[str, type] = {}

    def register(self, name: str, config: type | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a class/factory under `name`, with its config dataclass `config`
        (the factory then takes `config=<instance>`). Raises ValueError on a duplicate name or a
        config that is not a dataclass."""
        if config is not None and not dataclasses.is_dataclass(config):
            raise ValueError(f"{self.kind} '{name}': config must be a dataclass, got {config!r}")

        def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = factory
            if config is not None:
                self._configs[name] = config
            return factory

        return wrap

    def config_class(self, name: str) -> type | None:
        """The config dataclass registered with `name` (None if it has none); KeyError like `get`."""
        self.get(name)
        return self._configs.get(name)

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as `name`; KeyError with a "did you mean" suggestion otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise KeyError(f"unknown {self.kind} '{name}' (known: {sorted(self._entries)}){hint}") from None

    def create(self, name: str, /, **kwargs: Any) -> Any:
        """Instantiate the entry `name` with `kwargs`."""
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
