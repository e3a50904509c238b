"""One error hierarchy. Every error names the thing that is wrong and how to fix it.

The CLI prints ``str(err)`` as one line and exits 2; the engine catches ``ImageError`` and
``ModelError`` per chain so that one bad input fails its own chains, not the whole run.
"""

from __future__ import annotations


class RoundtripError(Exception):
    """Base class. ``what`` names the file/field/model, ``fix`` says what to do about it."""

    def __init__(self, what: str, problem: str, fix: str | None = None) -> None:
        self.what = what
        self.problem = problem
        self.fix = fix
        msg = f"{what}: {problem}"
        if fix:
            msg += f" (fix: {fix})"
        super().__init__(msg)


class ConfigError(RoundtripError):
    """A bad config key or value, or a bad CLI flag."""


class ImageError(RoundtripError):
    """An input image that cannot be read or used."""


class ModelError(RoundtripError):
    """A model that cannot be found, loaded, or run."""


class WeightsError(ModelError):
    """A weights file that cannot be fetched, verified, or trusted."""


class RunStoreError(RoundtripError):
    """A run directory that cannot be written or resumed as asked."""


class MeasurementError(RoundtripError):
    """A measurement that came out undefined (NaN): refused rather than recorded."""
