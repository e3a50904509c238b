"""Figures, contact sheets, videos, tables and a static HTML report, from a run directory
(or a sweep of them) alone: nothing here re-runs an experiment."""
