"""Experiments over many networks: sweeps of (architecture × seed × training option) with any of the
engine's measures, and precomputation of a run's views, run as Dask tasks.

Layering: ``experiments`` uses the engine (``geometry``) and never the app; the app and the CLI call
it. :mod:`experiments.store` keeps one result per task, keyed by a hash of its inputs, written
atomically (a rerun skips finished tasks); :mod:`experiments.cluster` runs tasks on an embedded
``LocalCluster`` or any Dask scheduler; :mod:`experiments.grid`, :mod:`experiments.measures` and
:mod:`experiments.sweep` define a sweep; :mod:`experiments.summary` makes its tables and box plots.
"""
