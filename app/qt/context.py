"""What a widget of the window is handed: the model objects it observes and the services it may use.

Widgets get a :class:`ViewContext`, never the window: they read the viewer state and the results, submit
work to the worker pool, and look tessellations up in the cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.results import Results
from ..model.state import ViewerState
from .theme import Theme


@dataclass(eq=False)
class ViewContext:
    state: ViewerState
    results: Results
    work: object  # app.qt.workers.WorkManager
    cache: object  # geometry.cache.ResultCache
    theme: Theme

    def set_status(self, text: str, error: bool = False) -> None:
        self.results.set_status(text, error)
