"""Spline Atlas application: the Qt desktop app (``app.qt``), its Qt-free state and the CLI (``app.cli``).

Importing ``app`` or ``app.cli`` never imports Qt; only ``app.qt`` does.
"""
