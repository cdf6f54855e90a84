"""||A_w||_2 on demand (#17): the window's tessellation skips the slope norms unless they are shown; asking for
them later computes only them, upgrades the cached tiles in place, and gives the engine's own numbers."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_slopes_on_demand_upgrade_the_cached_tiles_without_tessellating_again(digits_run_path, tmp_path, monkeypatch):
    import app.jobs.tessellate as tj
    from app.jobs.bundle import open_run_bundle
    from app.jobs.slicing import default_slice_choice, make_slice
    from geometry.cache import ResultCache
    from geometry.tessellation import has_slope_norms, tessellate

    b = open_run_bundle(digits_run_path)
    sl, home = make_slice(b, default_slice_choice(b))
    a = sl.anchors
    window = (a[:, 0].min(), a[:, 0].min() + 0.5, a[:, 1].min(), a[:, 1].min() + 0.5)
    cache = ResultCache(tmp_path)
    lazy = tj.tessellate_all(b, 1, sl, window, 100_000, cache, slopes=False)
    assert np.isnan(lazy[-1].slope_norm).all() and lazy[-1].num_regions > 50
    want = tessellate(b.network(1), sl, np.asarray(window)).slope_norm  # the engine, slopes in the same pass
    some = [0, lazy[-1].num_regions // 2, lazy[-1].num_regions - 1]
    assert [tj.slope_norm_of(b, 1, lazy[-1], r) for r in some] == pytest.approx(want[some], rel=1e-12)
    assert np.isnan(tj.slope_norm_of(b, 1, lazy[-1], -1))

    def no_second_tessellation(*args, **kwargs):
        raise AssertionError("the cached tiles were tessellated again")

    monkeypatch.setattr(tj, "tessellate_all_depths", no_second_tessellation)
    full = tj.tessellate_all(b, 1, sl, window, 100_000, cache, slopes=True)
    np.testing.assert_allclose(full[-1].slope_norm, want, rtol=1e-12)
    np.testing.assert_array_equal(full[-1].vertices, lazy[-1].vertices)
    assert full[:-1] == lazy[:-1] and np.isnan(lazy[-1].slope_norm).all()  # the depths above are shared, the old list untouched
    reread = ResultCache(tmp_path).get(tj.tessellation_key(b, 1, sl, window, 100_000))  # the disk entry was upgraded too
    assert has_slope_norms(reread[-1])
    np.testing.assert_allclose(reread[-1].slope_norm, want, rtol=0)
    assert tj.tessellate_all(b, 1, sl, window, 100_000, cache, slopes=False)[-1] is full[-1]  # a hit keeps its slopes
