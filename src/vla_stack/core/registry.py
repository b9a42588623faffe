"""One small registry so backends are picked by name from config files and flags.

    DETECTORS = Registry("detector")

    @DETECTORS.register("depth_clusters")
    class DepthClusterDetector: ...

    det = DETECTORS.create("depth_clusters", min_points=50)
"""

from __future__ import annotations

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

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a class/factory under `name`. Raises ValueError on a duplicate name."""

        def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = factory
            return factory

        return wrap

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
