"""The Qt-free model of the window: what the user looks at (``state``, ``view3d``), what was computed for it
(``results``) and how it is saved (``session``). Widgets observe these; nothing here imports Qt."""
