"""roundtrip-ml: measure what repeated downscale -> upscale roundtrips do to images."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("roundtrip-ml")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
