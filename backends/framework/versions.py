"""The installed versions of a framework's packages, for the manifest (these
integrations change quickly, so a result names exactly what ran)."""

from __future__ import annotations

from importlib import metadata

__all__ = ["package_versions"]


def package_versions(*names: str) -> dict[str, str | None]:
    """Installed versions of the framework and integration packages (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found
