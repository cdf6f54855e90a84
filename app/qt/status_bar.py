"""The window's status line: the resting status of the results (red when it is an error), and while work
runs its message, a progress bar and Cancel; the slice coordinates under the mouse; the slice's name."""

from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar

from ..model.results import Results

ERROR_STYLE = "color: #d0312d;"


class StatusLine:
    """Fills ``bar`` (a QStatusBar) and keeps it showing ``results.status`` and the activity of ``work``."""

    def __init__(self, bar: QStatusBar, results: Results, work, cancel: Callable[[], None]):
        self.results, self.work = results, work
        self.label = QLabel("Ready")
        self.label.setMinimumWidth(200)
        bar.addWidget(self.label, 1)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        bar.addPermanentWidget(self.progress)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Cancel the running computation")
        self.cancel_btn.setVisible(False)
        self.cancel_btn.clicked.connect(cancel)
        bar.addPermanentWidget(self.cancel_btn)
        self.coord_label = QLabel("")
        self.coord_label.setMinimumWidth(190)
        self.coord_label.setToolTip("slice coordinates under the mouse")
        bar.addPermanentWidget(self.coord_label)
        self.info_label = QLabel("")
        bar.addPermanentWidget(self.info_label)
        results.events.status.connect(self.show_status)
        work.activity.connect(self.on_activity)

    def show_status(self, status) -> None:
        text, error = status
        if not self.work.busy():
            self.label.setText(text)
            self.label.setStyleSheet(ERROR_STYLE if error else "")

    def on_activity(self, busy: bool, frac: float, message: str) -> None:
        self.progress.setVisible(busy)
        self.cancel_btn.setVisible(busy)
        if not busy:
            self.show_status(self.results.status)
            return
        if frac <= 0:
            self.progress.setRange(0, 0)  # busy, no fraction known: an indeterminate bar
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * min(frac, 1.0)))
        self.label.setStyleSheet("")
        self.label.setText(message)
