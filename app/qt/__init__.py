"""The Qt desktop application (PySide6 + pyqtgraph). The only package of Spline Atlas that imports Qt."""
