"""Commands that read or change the cache without downloading: list, status, info, path, verify, rm, clear."""

from __future__ import annotations

from ..core.text import human_size
from ..errors import Fix, Hint, ModelNotAvailableError, UsageError
from ..index import DEFAULT_SET
from .context import Context
from .output import Outcome, info_lines, info_row, model_json, status_line, verify_lines, verify_nothing, verify_row


def _statuses(ctx: Context, *, require: bool) -> Outcome:
    """list and status: one row per model; status also fails on each model that is not available."""
    from ..cache.status import not_available_error

    args = ctx.args
    out = Outcome(args.command)
    cache, index = ctx.cache_and_index()
    # list: every model of the index unless told; status: the default set, like warm and doctor
    specs = index.select(getattr(args, "names", []), args.set_name, default=DEFAULT_SET if require else None)
    statuses = [cache.status(spec) for spec in specs]
    width = max([len(st.name) for st in statuses] + [20]) + 1
    for st in statuses:
        out.models.append(model_json(st))
        out.lines.append(status_line(st, width))
        if require and not st.available:
            out.fail(not_available_error(st))
    if len(out.errors) > 1:  # each row above already says what is wrong and what to run: stderr names them once
        names = ", ".join(e.model or "?" for e in out.errors)
        out.errors_shown = f"{len(out.errors)} of {len(statuses)} models not available: {names} (the table above says why)"
    return out


def cmd_list(ctx: Context) -> Outcome:
    return _statuses(ctx, require=False)


def cmd_status(ctx: Context) -> Outcome:
    return _statuses(ctx, require=True)


def cmd_info(ctx: Context) -> Outcome:
    meta = ctx.manager().get_model_metadata(ctx.args.name)
    out = Outcome("info")
    out.models.append(info_row(meta))
    out.lines += info_lines(meta)
    return out


def cmd_path(ctx: Context) -> Outcome:
    from ..cache.status import not_available_error

    cache, index = ctx.cache_and_index()
    out = Outcome("path")
    st = cache.status(index.resolve(ctx.args.name))
    out.models.append(model_json(st))
    if not st.available or st.path is None:
        raise not_available_error(st)
    out.lines.append(str(st.path))
    return out


def cmd_verify(ctx: Context) -> Outcome:
    from ..cache.status import not_available_error

    args = ctx.args
    out = Outcome("verify")
    for rep in ctx.manager().verify(args.names, args.set_name, deep=args.deep, repair=args.repair):
        out.models.append(verify_row(rep))
        out.lines += verify_lines(rep)
        if rep.after.status == "unpinned":  # verify reports it like any failure: exit 1
            out.fail(ModelNotAvailableError(f"not fully pinned ({rep.after.reason}): nothing to verify against",
                                            model=rep.model, status="unpinned", hint=Hint.lock(rep.model)))
        elif not rep.ok:
            out.fail(not_available_error(rep.after))
    out.lines += verify_nothing() if not out.models else []
    return out


def cmd_rm(ctx: Context) -> Outcome:
    return _removal(ctx, "rm", ctx.args.names)


def cmd_clear(ctx: Context) -> Outcome:
    return _removal(ctx, "clear", None)


def _removal(ctx: Context, command: str, names: list[str] | None) -> Outcome:
    """rm and clear, one rule: --dry-run says what would go; removing takes --yes, or a yes at the terminal."""
    from .output import confirm, removal_lines

    args, mgr = ctx.args, ctx.manager()
    plan = mgr.clear_model_cache(names, dry_run=True)
    again = Fix(command, *(names or []), "--yes")
    if not args.dry_run and plan.removed and not args.yes:
        answer = None if ctx.json else confirm(f"remove {', '.join(plan.removed)} ({human_size(plan.bytes_freed)})?")
        if answer is None:
            raise UsageError(f"{command} removes {', '.join(plan.removed)} from the cache; add --yes to do it "
                             "(--dry-run shows what it would free)", hint=again)
        if not answer:
            raise UsageError("nothing removed", hint=again)
    report = plan if args.dry_run or not plan.removed else mgr.clear_model_cache(names)
    # with --dry-run, removed and bytes_freed say what would be removed and freed
    out = Outcome(command, data={"dry_run": bool(args.dry_run), "removed": list(report.removed),
                                 "absent": list(report.absent), "bytes_freed": report.bytes_freed})
    out.lines += removal_lines(report, dry_run=bool(args.dry_run))
    return out
