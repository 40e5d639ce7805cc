"""Commands that download or load: warm (download, verify, point refs, load-check) and load."""

from __future__ import annotations

from ..core.text import human_size
from ..errors import DownloadCancelled, Hint, LyricsubError
from . import Context
from .output import Bars, JsonEvents, Outcome, cache_json, model_json


def cmd_warm(ctx: Context) -> Outcome:
    args = ctx.args
    mgr = ctx.manager()
    specs = mgr.index.select(args.names, args.set_name)
    downloader = mgr.downloader(connections=args.connections, max_rate=args.max_rate, keep_refs=args.keep_refs,
                                transfer=args.transfer)
    display = JsonEvents() if ctx.json else Bars()
    downloader.set_progress_callback(display)
    out = Outcome("warm", streamed=ctx.json)
    results = []
    try:
        results = downloader.download_models([s.name for s in specs], force=args.force)
    except KeyboardInterrupt:
        downloader.cancel_download()
        out.fail(DownloadCancelled("cancelled; partial downloads are kept and the same command resumes them",
                                   hint=Hint.warm(" ".join(s.name for s in specs))))
    finally:
        if isinstance(display, Bars):
            display.close()
        downloader.close()
    shared: set[str] = set()
    for spec, result in zip(specs, results):
        st = mgr.status(spec)
        out.models.append(model_json(st) | {"bytes_fetched": result.bytes_fetched, "seconds": round(result.seconds, 3)})
        if result.success:
            out.lines.append(f"{spec.name:<28} available  fetched {human_size(result.bytes_fetched)} in "
                             f"{result.seconds:.1f}s  {result.local_path}")
            if not args.no_load:
                _load_check(ctx, spec.name, out)
            continue
        error = result.failure or LyricsubError(result.error or "download failed", model=spec.name)
        if error.code in ("unreachable", "cancelled", "disk_space") and error.code in shared:
            out.data.setdefault("skipped", []).append(spec.name)  # the same cause as the model before: said once
            continue
        shared.add(error.code)
        out.fail(error)
    out.data["bytes_fetched"] = sum(r.bytes_fetched for r in results)
    return out


def _load_check(ctx: Context, name: str, out: Outcome) -> None:
    """Prove the model loads and runs once; skipped where its library is not installed."""
    from ..families import library_missing

    mgr = ctx.manager()
    missing = library_missing(mgr.spec(name).family)
    if missing:
        out.lines.append(f"{name:<28} load check skipped: {missing} is not installed (pip install 'lyricsub-hub[full]')")
        return
    try:
        report = mgr.smoke_test(name, device=ctx.args.device)
    except LyricsubError as exc:
        out.fail(exc)
        return
    out.models[-1]["load"] = {"device": report.device, "load_seconds": round(report.load_seconds, 3),
                              "run_seconds": round(report.run_seconds, 3), "summary": report.summary}
    out.lines.append(f"{name:<28} loaded on {report.device} in {report.load_seconds:.2f}s, ran in "
                     f"{report.run_seconds:.2f}s: {report.summary}")


def cmd_load(ctx: Context) -> Outcome:
    mgr = ctx.manager()
    out = Outcome("load")
    for name in ctx.args.names:
        try:
            rep = mgr.smoke_test(name, device=ctx.args.device)
        except LyricsubError as exc:
            out.fail(exc)
            continue
        st = mgr.status(rep.name)
        out.models.append({"name": rep.name, "status": "loaded", "path": str(st.path), "cache": cache_json(st),
                           "device": rep.device, "load_seconds": round(rep.load_seconds, 3),
                           "run_seconds": round(rep.run_seconds, 3), "summary": rep.summary})
        where = f"  (from the site cache {st.cache_dir})" if st.site else ""
        out.lines.append(f"{rep.name:<28} {rep.device:<7} load {rep.load_seconds:.2f}s  run {rep.run_seconds:.2f}s  "
                         f"{rep.summary}{where}")
    return out
