"""The motionpipe version, recorded in every artifact's provenance."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("motionpipe")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0+source"
