"""Figures, contact sheets, videos, tables and a static HTML report, from a run directory
(or a sweep of them) alone: nothing here re-runs an experiment.

Figure functions return matplotlib Figures (``drift_figure``; ``drift_figures`` for every
page) so they render in a notebook and take a paper's own styles; ``plot_drift`` also writes
PDF/SVG/PNG. ``contact_sheet`` returns a SheetResult (``.figure``, ``.to_image()`` -> PIL).
"""

from .data import Runs, load_runs
from .html import Report, write_report
from .labels import MetricLabel, axis_label, display_name, label
from .plots import DriftFigure, drift_figure, drift_figures, plot_drift, save_figure
from .sheets import SheetResult, contact_sheet
from .tables import Tables, write_tables
from .video import VideoResult, make_video

__all__ = [
    "DriftFigure",
    "MetricLabel",
    "Report",
    "Runs",
    "SheetResult",
    "Tables",
    "VideoResult",
    "axis_label",
    "contact_sheet",
    "display_name",
    "drift_figure",
    "drift_figures",
    "label",
    "load_runs",
    "make_video",
    "plot_drift",
    "save_figure",
    "write_report",
    "write_tables",
]
