"""A sweep's tables and figures: the tidy table (one row per run, one column per measure), the summary
(mean, sd, median, min, max, n per cell and measure) as CSV and Parquet, and box plots per cell."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from geometry.safe_io import atomic_save, write_text

META = ("key", "seed", "run", "best_epoch", "stopped_epoch", "notes")
STATS = ("mean", "sd", "median", "min", "max", "n")
UNITS = {
    "regions_box": "regions",
    "regions_plane": "regions",
    "bounded_plane": "regions",
    "unbounded_plane": "regions",
    "cells_3d": "cells",
    "train_mse": "targets' units²",
    "test_mse": "targets' units²",
    "chebyshev_mean": "input units",
    "chebyshev_median": "input units",
    "density_data": "regions per square",
    "density_boundary": "regions per square",
    "density_random": "regions per square",
    "lc_train": "neurons",
    "lc_test": "neurons",
}


LOG_SCALE = {"train_mse", "test_mse", "loss", "val_loss"}  # errors span decades across cells


def split_columns(rows: list[dict], cell_names: list[str]) -> list[str]:
    """The measure columns: numeric columns that are neither the cell's nor bookkeeping."""
    seen: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if k not in cell_names and k not in META and k != "epochs" and isinstance(v, (int, float)) and not isinstance(v, bool):
                seen[k] = None
    return list(seen)


def cell_label(cell: dict) -> str:
    return ", ".join(f"{k}={v}" if k != "arch" else str(v) for k, v in cell.items())


def summarise(rows: list[dict], cells: list[dict]) -> tuple[list[str], list[list]]:
    """(header, rows) of the summary: a row per cell, for each measure its mean, sd (n−1), median, min,
    max and n (NaN values, e.g. a measure that did not apply, are left out of n)."""
    names = list(cells[0]) if cells else ["arch"]
    measures = split_columns(rows, names)
    header = names + [f"{m}_{s}" for m in measures for s in STATS]
    out = []
    for cell in cells:
        mine = [r for r in rows if all(r.get(k) == v for k, v in cell.items())]
        line = [cell[k] for k in names]
        for m in measures:
            v = np.array([float(r[m]) for r in mine if r.get(m) is not None], dtype=np.float64)
            v = v[np.isfinite(v)]
            if len(v):
                line += [v.mean(), v.std(ddof=1) if len(v) > 1 else math.nan, float(np.median(v)), v.min(), v.max(), len(v)]
            else:
                line += [math.nan] * 5 + [0]
        out.append(line)
    return header, out


def _csv(header, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if isinstance(v, float) and not math.isfinite(v) else (f"{v:.10g}" if isinstance(v, float) else v) for v in r])
    return buf.getvalue()


def _parquet(path: Path, header, rows) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {h: [r[i] for r in rows] for i, h in enumerate(header)}
    table = pa.table({h: pa.array([None if isinstance(v, float) and not math.isfinite(v) else v for v in vals]) for h, vals in cols.items()})
    atomic_save(path, lambda tmp: pq.write_table(table, str(tmp)))


def write_tables(out: Path, rows: list[dict], cells: list[dict]) -> list[Path]:
    """``table.csv``/``.parquet`` (a row per run, in grid order) and ``summary.csv``/``.parquet``."""
    names = list(cells[0]) if cells else ["arch"]
    measures = split_columns(rows, names)
    extra = [c for c in ("best_epoch", "stopped_epoch") if any(c in r for r in rows)]
    extra += ["notes"] if any("notes" in r for r in rows) else []
    header = names + ["seed", "epochs"] + measures + extra + ["run", "key"]
    table = [[r.get(h, math.nan) for h in header] for r in rows]
    s_header, s_rows = summarise(rows, cells)
    written = []
    for stem, (h, body) in (("table", (header, table)), ("summary", (s_header, s_rows))):
        write_text(out / f"{stem}.csv", _csv(h, body))
        _parquet(out / f"{stem}.parquet", h, body)
        written += [out / f"{stem}.csv", out / f"{stem}.parquet"]
    return written


def format_summary(rows: list[dict], cells: list[dict]) -> str:
    """The summary as the terminal shows it: a block per measure, a line per cell."""
    names = list(cells[0]) if cells else ["arch"]
    header, body = summarise(rows, cells)
    measures = split_columns(rows, names)
    width = max([len(cell_label(c)) for c in cells] + [4])
    lines = []
    for m in measures:
        unit = f" ({UNITS[m]})" if m in UNITS else ""
        lines.append(f"{m}{unit}")
        lines.append(f"  {'cell':<{width}}  {'mean':>11} {'sd':>11} {'median':>11} {'min':>11} {'max':>11} {'n':>4}")
        at = header.index(f"{m}_mean")
        for cell, line in zip(cells, body):
            v = line[at : at + 6]
            lines.append(f"  {cell_label(cell):<{width}}  " + " ".join(f"{x:>11.5g}" for x in v[:5]) + f" {v[5]:>4}")
    return "\n".join(lines)


def box_plots(path: Path, rows: list[dict], cells: list[dict], title: str, dpi: int = 150) -> Path:
    """One panel per measure, one box per cell (the seeds' spread), every axis labelled; PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(cells[0]) if cells else ["arch"]
    measures = split_columns(rows, names)
    n = max(1, len(measures))
    cols = min(n, 3)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.4 * cols, 3.4 * nrows + 0.6), squeeze=False, constrained_layout=True)
    labels = [cell_label(c) for c in cells]
    for ax, m in zip(axes.flat, measures):
        data = []
        for cell in cells:
            v = np.array([float(r[m]) for r in rows if all(r.get(k) == c for k, c in cell.items()) and r.get(m) is not None], dtype=np.float64)
            data.append(v[np.isfinite(v)])
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(
            range(1, len(labels) + 1),
            labels,
            rotation=30 if max(map(len, labels)) > 8 else 0,
            ha="right" if max(map(len, labels)) > 8 else "center",
            fontsize=8,
        )
        ax.set_ylabel(f"{m} ({UNITS[m]})" if m in UNITS else m)
        if m in LOG_SCALE and all(len(d) and d.min() > 0 for d in data):
            ax.set_yscale("log")
        ax.set_xlabel("cell (architecture, options)")
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(measures) :]:
        ax.set_visible(False)
    fig.suptitle(f"{title}\nboxes: quartiles over seeds, orange line: median, green triangle: mean, circles: outliers", fontsize=10)
    for p in (path, path.with_suffix(".svg")):
        atomic_save(p, lambda tmp: fig.savefig(tmp, dpi=dpi))
    plt.close(fig)
    return path
