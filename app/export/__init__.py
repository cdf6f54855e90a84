"""Video export (Qt-free): :mod:`app.export.video` writes MP4/GIF atomically; :mod:`app.export.sweeps`
renders epoch sweeps, layer sweeps and path animations with the figure renderers of :mod:`app.render`."""
