"""Deploy: recreate the workers mid-run from another image (platforms that run images),
on another code version (backends that have versions), or both. What the platform or
the backend cannot make is refused before the run starts; an unknown version is an
error then, not a surprise halfway through."""

from __future__ import annotations

from backends.base import Backend, Deployable
from harness.errors import DurabenchError, UnsupportedFault
from harness.faults import DeployFault
from harness.injectors.base import FaultContext, Injector, Occurrence
from harness.platform.base import Platform
from harness.platform.capabilities import RunImages

__all__ = ["DeployInjector"]


class DeployInjector(Injector[DeployFault], kind="deploy"):
    def refuse(
        self, fault: DeployFault, platform: Platform | None, backend: Backend | None
    ) -> str | None:
        if fault.image is not None and platform is not None and not isinstance(platform, RunImages):
            return f"the {platform.name} platform runs no images: cannot deploy {fault.image!r}"
        if fault.version is not None and backend is not None:
            if not isinstance(backend, Deployable):
                return "this backend has no code versions to deploy"
            versions = backend.versions()
            if fault.version not in versions and len(versions) == 1:
                return f"this backend has one code version ({versions[0]}): none to deploy"
            if fault.version not in versions:
                raise DurabenchError(
                    f"version: unknown version {fault.version!r}; this backend has "
                    + ", ".join(versions)
                )
        return None

    async def apply(self, fault: DeployFault, ctx: FaultContext, at: Occurrence) -> None:
        if ctx.deploy is None:
            raise UnsupportedFault("no deployer in this run")
        at.selected = [c.spec.name for c in ctx.platform.components("worker")]
        await ctx.deploy(fault)
        at.detail = "deployed " + " and ".join(
            f"{what} {value}"
            for what, value in (("image", fault.image), ("version", fault.version))
            if value is not None
        )
