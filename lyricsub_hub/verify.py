"""`verify`: check cached files against their pins, and repair what fails.

Plan, then act: verification only reads; repair hands the bad files to the
downloader, which drops them and fetches the pinned bytes again.
"""

from __future__ import annotations

from dataclasses import dataclass

from .index import ModelSpec
from .manager import ModelManager
from .status import ModelStatus, Verify


@dataclass(frozen=True)
class VerifyReport:
    model: str
    before: ModelStatus
    after: ModelStatus  # same as before unless a repair ran
    repaired: tuple[str, ...] = ()
    repair_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.after.status == "available"


def select(manager: ModelManager, names: list[str], set_name: str | None) -> list[ModelSpec]:
    """Named models, or every model with at least one file in the cache."""
    if names or set_name:
        return manager.index.expand(names, set_name)
    present = []
    for spec in manager.index.models.values():
        st = manager.status(spec, verify="stat")
        if st.status not in ("missing", "unpinned"):
            present.append(spec)
    return present


def verify_models(manager: ModelManager, specs: list[ModelSpec], *, deep: bool = False, repair: bool = False,
                  downloader=None) -> list[VerifyReport]:
    mode: Verify = "deep" if deep else "record"
    reports = []
    for spec in specs:
        before = manager.status(spec, verify=mode)
        if not repair or before.available or before.status == "unpinned":
            reports.append(VerifyReport(spec.name, before, before))
            continue
        from .download import ModelDownloader

        dl = downloader or ModelDownloader(manager)
        bad = tuple(f.name for f in before.files if f.state not in ("ok", "unpinned"))
        result = dl.download_model(spec.name)
        after = manager.status(spec, verify=mode)
        reports.append(VerifyReport(spec.name, before, after, bad if result.success else (), result.error))
    return reports
