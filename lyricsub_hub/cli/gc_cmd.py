"""`lyricsub-hub gc`: remove what the index no longer pins, downloads no process runs and blobs no snapshot
uses; with --max-size, then the least recently used models until the cache fits (rules: gc.py)."""

from __future__ import annotations

from ..core.text import human_size
from ..errors import DiskSpaceError, Fix, UnsafeCacheError, UsageError
from .context import Context
from .output import Outcome, gc_line, gc_row, gc_skip_row, gc_summary

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..gc import Removal


def cmd_gc(ctx: Context) -> Outcome:
    from .. import gc

    args = ctx.args
    mgr = ctx.manager()
    max_size = _max_size(args.max_size)
    keep: set[str] = set()
    for set_name in args.keep_set:
        keep.update(spec.name for spec in mgr.index.select([], set_name))
    plan = gc.plan(mgr.cache, mgr.index.models.values(), max_size=max_size, keep=keep)
    removed: tuple[Removal, ...] = ()
    if args.dry_run:
        skipped, freed, after = plan.skipped, 0, plan.size_after
    else:
        report = gc.execute(plan, mgr.cache)
        removed, skipped, freed, after = report.removed, report.skipped, report.freed, report.size_after
    fits = None if max_size is None else after <= max_size
    out = Outcome("gc", data={
        "dry_run": bool(args.dry_run), "cache_dir": str(mgr.cache_dir), "max_size": max_size, "keep": sorted(keep),
        "size_before": plan.size_before, "size_after": after, "fits": fits, "bytes_to_free": plan.to_free,
        "bytes_freed": freed, "planned": [gc_row(r) for r in plan.removals], "removed": [gc_row(r) for r in removed],
        "skipped": [gc_skip_row(s) for s in skipped]})
    done = {(r.kind, r.repo, r.target) for r in removed}
    for item in plan.removals if args.dry_run else removed:
        if item.kind == "model":
            for name in item.models:
                out.models.append({"name": name, "repo": item.repo, "revision": item.target,
                                   "removed": (item.kind, item.repo, item.target) in done})
    verb = "would remove" if args.dry_run else "removed"
    out.lines += [gc_line(verb, r) for r in (plan.removals if args.dry_run else removed)]
    out.lines += [gc_line("kept", s) for s in skipped]
    out.lines.append(gc_summary(plan, freed, after, max_size, dry_run=bool(args.dry_run)))
    for s in skipped:
        if s.refused:
            out.fail(UnsafeCacheError(f"{s.repo}@{s.target[:12]} was not removed: {s.reason}", hint=s.hint))
    if fits is False:
        assert max_size is not None
        out.fail(DiskSpaceError(f"the cache would still hold {human_size(after)}, over --max-size {human_size(max_size)}: "
                                "the rest is kept (--keep-set), refused, or in use by a running download (only the index's models count "
                                "and are removed)",
                                hint="hf cache ls (what else the cache holds), or lyricsub-hub gc --max-size <larger>"))
    return out


def _max_size(text: str | None) -> int | None:
    if not text:
        return None
    from ..core.text import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise UsageError(f"--max-size: {exc}", hint=Fix("gc", "--max-size", "20G")) from None
