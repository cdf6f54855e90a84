"""Regions panel (app/qt/regions_panel.py): draws what it is given, with labelled axes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")

from app.qt.regions_panel import RegionsPanel  # noqa: E402
from geometry.regions.stats import RegionStats  # noqa: E402


def test_panel_histograms_and_table(qtbot):
    panel = RegionsPanel()
    qtbot.addWidget(panel)
    rng = np.random.default_rng(0)
    radii = {"train": rng.uniform(0.1, 0.3, 40), "test": rng.uniform(0.1, 0.3, 30), "adversarial": rng.uniform(0, 0.1, 30)}
    active = {k: rng.integers(20, 60, len(v)) for k, v in radii.items()}
    panel.set_data(radii, active)
    assert panel.radius_plot.getPlotItem().getAxis("bottom").labelText.startswith("Chebyshev radius")
    assert panel.active_plot.getPlotItem().getAxis("bottom").labelText.startswith("active bits")
    curves = panel.radius_plot.getPlotItem().listDataItems()
    assert len(curves) == 3
    # histogram counts add up to the number of points per set
    assert [int(np.sum(c.yData)) for c in curves] == [40, 30, 30]
    assert panel.table.rowCount() == 3 and panel.table.item(2, 0).text() == "adversarial"
    assert panel.table.item(0, 1).text() == "40"
    st = RegionStats(
        np.array(["train"] * 3 + ["test"] * 2),
        np.arange(5),
        np.array([0.1, 0.2, np.nan, 0.3, 0.4]),
        np.array([5, 6, 7, 8, 9]),
        np.ones(5),
        np.zeros(5, int),
        (0.0, 1.0),
    )
    panel.set_stats(st)
    curves = panel.active_plot.getPlotItem().listDataItems()
    assert [int(np.sum(c.yData)) for c in curves] == [3, 2]
    assert [int(np.sum(c.yData)) for c in panel.radius_plot.getPlotItem().listDataItems()] == [2, 2]  # NaN left out
    panel.clear()
    assert panel.table.rowCount() == 0 and not panel.radius_plot.getPlotItem().listDataItems()
    with pytest.raises(ValueError):
        panel.set_data({"a": [1.0]}, {"b": [1]})


def test_panel_controls_ask_for_the_computation(qtbot):
    panel = RegionsPanel()
    qtbot.addWidget(panel)
    asked = []
    panel.compute_requested.connect(asked.append)
    panel.n_spin.setValue(7)
    panel.set_checks["test"].setChecked(False)
    panel.active_check.setChecked(False)
    panel.compute_btn.click()
    assert asked == [{"n": 7, "sets": ("train", "adversarial"), "active": False}]
    for cb in panel.set_checks.values():  # no set chosen: nothing to ask for
        cb.setChecked(False)
    assert not panel.compute_btn.isEnabled()
    panel.set_checks["train"].setChecked(True)
    assert panel.compute_btn.isEnabled()
    panel.set_available(False, "no dataset")
    assert not panel.compute_btn.isEnabled() and panel.title.text() == "no dataset"
