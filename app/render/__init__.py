"""Qt-free figure rendering (matplotlib, Agg/SVG/PDF backends): what File > Export and the CLI draw.

The GUI's export dialog and ``splineatlas export-figure`` call the same functions, so they produce
the same picture: :mod:`app.render.slice_figure` (2D slice: tiles as vector polygons, edges, exact
decision boundary, data), :mod:`app.render.curves` (training dynamics), :mod:`app.render.path_figure`.
"""
