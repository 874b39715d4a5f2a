"""An on/off setting for aunet's CPU speed-ups (fastconv, x2 upsampling, folded gates), so each can be measured."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class Switch:
    """On, except inside `off()` blocks (which nest)."""

    def __init__(self) -> None:
        self.on = True

    @contextmanager
    def off(self) -> Iterator[None]:
        """Switch the setting off inside this block."""
        previous, self.on = self.on, False
        try:
            yield
        finally:
            self.on = previous
