"""Platforms run components: local processes now; docker and kubernetes later."""

from harness.platform.local import Component, ComponentSpec, LocalPlatform, free_port

__all__ = ["Component", "ComponentSpec", "LocalPlatform", "free_port"]
