"""regsync keeps Blackthorn Events registrations (Salesforce) and Checkfront booking sessions in step."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("regsync")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
