"""E-stop latch: `safety/estop` true latches a controlled stop at maximum deceleration until
`safety/reset` is called with the e-stop released."""

from __future__ import annotations


class EStopLatch:
    """Latched emergency stop.

    `pressed` is the last value received on the e-stop input; `latched` stays True from the
    first press until `reset()` succeeds, which needs the e-stop released.
    """

    def __init__(self) -> None:
        self.pressed = False
        self.latched = False
        self.latched_at: float | None = None

    def set(self, pressed: bool, now: float) -> bool:
        """New e-stop input at `now` s; returns True if this press newly latched the stop."""
        self.pressed = bool(pressed)
        if self.pressed and not self.latched:
            self.latched = True
            self.latched_at = now
            return True
        return False

    def reset(self) -> tuple[bool, str]:
        """Clear the latch if the e-stop is released; returns (success, message)."""
        if self.pressed:
            return False, "e-stop is still pressed: release it (publish false on safety/estop), then reset"
        was = self.latched
        self.latched = False
        self.latched_at = None
        return True, "e-stop latch cleared" if was else "e-stop was not latched"
