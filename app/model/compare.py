"""What the Compare tab compares, Qt-free and observable: the right-hand network is checkpoint
``other_epoch_index`` of ``other_run`` (None: the open run), the left-hand one is the epoch slider's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from psygnal import Signal


@dataclass(frozen=True)
class CompareChoice:
    other_run: str | None = None
    other_epoch_index: int = 0


class CompareState:
    """The current :class:`CompareChoice`; ``changed`` is emitted with the new choice."""

    changed = Signal(object)

    def __init__(self):
        self._choice = CompareChoice()

    choice = property(lambda self: self._choice)

    def update(self, **changes) -> None:
        new = replace(self._choice, **changes)
        if new != self._choice:
            self._choice = new
            self.changed.emit(new)
