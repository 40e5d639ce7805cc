"""Commands that download or load: warm (download, verify, point refs, load-check) and load."""

from __future__ import annotations

from ..errors import DownloadCancelled, Fix, Hint, LyricsubError, UsageError
from .context import Context
from .output import (
    Bars,
    JsonEvents,
    Outcome,
    cache_json,
    load_row,
    loaded_line,
    model_json,
    note,
    skipped_load_line,
    warm_line,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..index import ModelSpec


def check_device(ctx: Context, command: str, names: list[str], *, resolve: bool) -> None:
    """--device checked before any work: a malformed one is exit 2 at once; with resolve, a GPU torch cannot see
    fails now too, not after minutes of downloading. The fix names this command, not another."""
    from ..families.devices import device_problem, resolve_device

    again = Fix(command, *names, "--device", "cpu")
    problem = device_problem(ctx.args.device)
    if problem:
        raise UsageError(problem, hint=again)
    if resolve:
        try:
            resolve_device(ctx.args.device)
        except LyricsubError as exc:
            raise exc.with_hint(again) from None


def cmd_warm(ctx: Context) -> Outcome:
    args = ctx.args
    again = [*args.names, *(["--set", args.set_name] if args.set_name else [])]
    check_device(ctx, "warm", again, resolve=not args.no_load and args.device.strip().lower() != "cpu")
    mgr = ctx.manager()
    specs = mgr.index.select(args.names, args.set_name)
    downloader = mgr.downloader(connections=args.connections, max_rate=args.max_rate, keep_refs=args.keep_refs)
    display = JsonEvents() if ctx.json else Bars()
    downloader.set_progress_callback(display)
    out = Outcome("warm", streamed=ctx.json)
    results = []
    try:
        results = downloader.download_models([s.name for s in specs], force=args.force)
    except KeyboardInterrupt:
        downloader.cancel_download()
        out.fail(DownloadCancelled("cancelled; partial downloads are kept and the same command resumes them",
                                   hint=Hint.warm(*(s.name for s in specs))))
    finally:
        if isinstance(display, Bars):
            display.close()
        downloader.close()
    shared: dict[str, list[str]] = {}  # error code -> the models that failed for it after the first
    for spec, result in zip(specs, results):
        st = mgr.status(spec)
        out.models.append(model_json(st) | {"bytes_fetched": result.bytes_fetched, "seconds": round(result.seconds, 3)})
        if result.success:
            out.lines.append(warm_line(spec.name, result))
            if not args.no_load:
                _load_check(ctx, spec, out)
            continue
        error = result.failure or LyricsubError(result.error or "download failed", model=spec.name)
        if error.code in ("unreachable", "cancelled", "disk_space") and error.code in shared:
            shared[error.code].append(spec.name)  # the same cause as the model before: said once, named below
            continue
        shared.setdefault(error.code, [])
        out.fail(error)
    skipped = [name for names in shared.values() for name in names]
    out.data["skipped"] = skipped
    if skipped:
        out.notes.append(f"not warmed either, for the same reason: {', '.join(skipped)}")
    out.data["bytes_fetched"] = sum(r.bytes_fetched for r in results)
    return out


def _load_check(ctx: Context, spec: ModelSpec, out: Outcome) -> None:
    """Prove the model loads and runs once; skipped where its library is not installed."""
    from ..families import FAMILIES, library_missing

    missing = library_missing(spec.family)
    if missing:
        out.lines.append(skipped_load_line(spec.name, missing))
        return
    note(f"{spec.name}: load check on {ctx.args.device}: importing {FAMILIES[spec.family].library} (the first import "
         "takes a few seconds)", quiet=ctx.json)
    try:
        report = ctx.manager().smoke_test(spec.name, device=ctx.args.device)
    except LyricsubError as exc:
        out.fail(exc)
        return
    out.models[-1]["load"] = load_row(report)
    out.lines.append(loaded_line(spec.name, report))


def cmd_load(ctx: Context) -> Outcome:
    from ..cache.status import not_available_error
    from ..families import FAMILIES, library_missing

    args = ctx.args
    check_device(ctx, "load", [*args.names, *(["--set", args.set_name] if args.set_name else [])], resolve=False)
    mgr = ctx.manager()
    out = Outcome("load")
    # load loads what is named; what a model requires is opened by its own load, checked there
    for spec in mgr.index.select(args.names, args.set_name, with_requires=False):
        st = mgr.status(spec)
        if not st.available:
            out.fail(not_available_error(st))
            continue
        if not library_missing(spec.family):
            note(f"{spec.name}: loading on {args.device}: importing {FAMILIES[spec.family].library} (the first import "
                 "takes a few seconds)", quiet=ctx.json)
        try:
            rep = mgr.smoke_test(spec.name, device=args.device)
        except LyricsubError as exc:
            out.fail(exc)
            continue
        st = mgr.status(rep.name)
        out.models.append({"name": rep.name, "status": "loaded", "path": str(st.path), "cache": cache_json(st)}
                          | load_row(rep))
        out.lines.append(loaded_line(rep.name, rep, st))
    return out
