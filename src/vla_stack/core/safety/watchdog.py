"""Command watchdog: no valid input for `timeout` s past the end of the current input ->
the controller decelerates to a stop within the limits and holds."""

from __future__ import annotations


class CommandWatchdog:
    """Tracks when the last valid input stops covering the present.

    A chunk covers time up to its last point; a teleop command covers only the moment it
    arrives. The watchdog expires `timeout` s after the later of the two.

    Args:
        timeout: s of grace after the last valid input (or the end of the chunk) runs out.
    """

    def __init__(self, timeout: float) -> None:
        if not (timeout > 0):
            raise ValueError(f"watchdog timeout must be > 0 s, got {timeout}")
        self.timeout = float(timeout)
        self._covered_until: float | None = None

    def feed(self, now: float, valid_until: float | None = None) -> None:
        """Valid input received at `now`, covering time up to `valid_until` (s, default `now`)."""
        until = now if valid_until is None else max(now, valid_until)
        self._covered_until = until if self._covered_until is None else max(self._covered_until, until)

    def clear(self) -> None:
        """Forget the input (after a stop or reset)."""
        self._covered_until = None

    @property
    def armed(self) -> bool:
        """True while there is input to watch."""
        return self._covered_until is not None

    @property
    def deadline(self) -> float | None:
        """Time the watchdog expires, s, or None if nothing is being watched."""
        return None if self._covered_until is None else self._covered_until + self.timeout

    def expired(self, now: float) -> bool:
        """True when input is being watched and its deadline has passed."""
        return self._covered_until is not None and now > self._covered_until + self.timeout
