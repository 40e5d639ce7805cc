"""The `lyricsub-hub` command: argparse wiring and one handler per command.

Handlers return an Outcome; render.py prints it. Expected failures end as one
line and a documented exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Callable, Sequence

from . import __version__
from .environment import go_offline, quiet_hub
from .errors import EXIT_CANCELLED, EXIT_USAGE, LyricsubError, ModelNotAvailableError, UsageError
from .render import Outcome, emit, human_size, model_json, status_line

Handler = Callable[[argparse.Namespace], Outcome]


def _globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Global options, accepted before or after the command."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--index", default=default, metavar="FILE", help="model index (default: $LYRICSUB_MODEL_INDEX or the bundled one)")
    parser.add_argument("--cache-dir", default=default, metavar="DIR", help="huggingface_hub cache (default: $HF_HUB_CACHE or $HF_HOME/hub)")
    parser.add_argument("--offline", action="store_true", default=default if suppress else False, help="never touch the network (sets HF_HUB_OFFLINE=1)")
    parser.add_argument("--json", action="store_true", default=default if suppress else False, help="print JSON instead of text")
    parser.add_argument("--endpoint", default=default, metavar="URL", help="Hub endpoint (default: $HF_ENDPOINT or huggingface.co)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lyricsub-hub", description="Pinned, verified, offline-ready models for Demucs + WhisperX.")
    parser.add_argument("--version", action="version", version=f"lyricsub-hub {__version__}")
    _globals(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _globals(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text)

    p = cmd("list", "every model in the index with its cache status")
    p.add_argument("--set", dest="set_name", metavar="SET")
    p = cmd("status", "status of models (exit 1 unless all are available)")
    _names(p)
    p = cmd("info", "what the index says about a model and what the cache holds")
    p.add_argument("name")
    p = cmd("path", "print the snapshot folder of an available model")
    p.add_argument("name")
    p = cmd("rm", "remove models from the cache (through huggingface_hub's cache deletion)")
    p.add_argument("names", nargs="+", metavar="NAME")
    p = cmd("clear", "remove every model of the index from the cache (other models stay)")
    p.add_argument("--yes", action="store_true", help="really remove them")
    p = cmd("warm", "download models so the app can start offline (default set when none named)")
    _names(p)
    p.add_argument("--workers", type=int, default=4, metavar="N", help="files downloaded in parallel (default 4)")
    p.add_argument("--force", action="store_true", help="fetch every file again")
    p.add_argument("--transfer", choices=("http", "hub"), default="http",
                   help="http: resumable across runs, hashed while written (default); hub: huggingface_hub decides (Xet where available)")
    p.add_argument("--no-load", action="store_true", help="skip loading each model after download")
    p.add_argument("--device", default="cpu", help="device for the load check: cpu, cuda, cuda:N, auto (default cpu)")
    p = cmd("load", "load models from the cache on a device and run each once on a synthetic signal")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default auto)")
    p = cmd("verify", "check cached files against their pinned hashes (exit 1 on any failure)")
    _names(p)
    p.add_argument("--deep", action="store_true", help="re-hash every file, ignoring verification records")
    p.add_argument("--repair", action="store_true", help="delete bad files and fetch them again")
    p = cmd("lock", "fill missing pins in the index from the Hub (commit, files, sizes, sha256)")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--update", action="store_true", help="move entries to the newest commit of their branch")
    return parser


def _names(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--set", dest="set_name", metavar="SET")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage
        return EXIT_USAGE if exc.code not in (0, None) else 0
    quiet_hub()
    if args.offline:
        go_offline()
    if args.endpoint:
        os.environ["HF_ENDPOINT"] = args.endpoint
    _sigterm_as_interrupt()
    if args.command in ("load", "warm", "verify", "lock") and not os.environ.get("LYRICSUB_VERBOSE"):
        _quiet_libraries()  # huggingface_hub 0.x logs each of its own retries as a warning
    handler = HANDLERS[args.command]
    try:
        outcome = handler(args)
    except LyricsubError as exc:
        outcome = Outcome(args.command)
        outcome.fail(exc)
    except KeyboardInterrupt:
        outcome = Outcome(args.command)
        from .errors import DownloadCancelled

        outcome.fail(DownloadCancelled("cancelled; partial downloads are kept and the same command resumes them"))
        outcome.exit_code = EXIT_CANCELLED
    return emit(outcome, args.json)


def _quiet_libraries() -> None:
    """The speech libraries log and warn a lot on load (torchcodec, Lightning upgrades, VAD info);
    the CLI keeps stderr for what the user must act on."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.disable(logging.WARNING)  # libraries set their own logger levels at import; this outranks them


def _sigterm_as_interrupt() -> None:
    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread (tests calling main from a worker)
        pass


def manager_for(args: argparse.Namespace):
    from .manager import ModelManager

    return ModelManager(args.index, args.cache_dir, endpoint=args.endpoint)


def _statuses(args: argparse.Namespace, *, require: bool) -> Outcome:
    """list and status: one row per model; status also fails on each model that is not available."""
    from .manager import not_available_error

    mgr = manager_for(args)
    names = getattr(args, "names", [])
    if require and not names and not args.set_name:
        raise UsageError("name at least one model or --set SET", hint="lyricsub-hub list")
    out = Outcome(args.command)
    statuses = mgr.list_models(names, args.set_name)
    width = max([len(st.name) for st in statuses] + [20]) + 1
    for st in statuses:
        out.models.append(model_json(st))
        out.lines.append(status_line(st, width))
        if require and not st.available:
            out.fail(not_available_error(st))
    return out


def cmd_list(args: argparse.Namespace) -> Outcome:
    return _statuses(args, require=False)


def cmd_status(args: argparse.Namespace) -> Outcome:
    return _statuses(args, require=True)


def cmd_info(args: argparse.Namespace) -> Outcome:
    mgr = manager_for(args)
    meta = mgr.get_model_metadata(args.name)
    out = Outcome("info")
    out.models.append(model_json(meta.status) | {"license": meta.license, "gated": meta.gated, "branch": meta.branch,
                                                  "description": meta.description})
    out.lines += [
        f"name:      {meta.name}", f"family:    {meta.family}", f"repo:      {meta.repo}",
        f"revision:  {meta.revision or '(not pinned)'}", f"license:   {meta.license or '?'}",
        f"gated:     {'yes (accept the terms on the repo page, set HF_TOKEN)' if meta.gated else 'no'}",
        f"status:    {meta.status.status}", f"size:      {human_size(meta.total_size)}",
        f"path:      {meta.status.path or '-'}", "files:",
    ]
    out.lines += [f"  {f.name:<40} {human_size(f.actual_size if f.actual_size is not None else f.expected_size):>9}  {f.state}" for f in meta.status.files]
    return out


def cmd_path(args: argparse.Namespace) -> Outcome:
    mgr = manager_for(args)
    out = Outcome("path")
    st = mgr.status(args.name)
    out.models.append(model_json(st))
    path = mgr.get_model_path(args.name)
    out.lines.append(str(path))
    return out


def cmd_rm(args: argparse.Namespace) -> Outcome:
    mgr = manager_for(args)
    report = mgr.clear_model_cache(args.names)
    return _removal_outcome("rm", report)


def cmd_clear(args: argparse.Namespace) -> Outcome:
    if not args.yes:
        raise UsageError("clear removes every model of the index from the cache; add --yes to do it", hint="lyricsub-hub clear --yes")
    report = manager_for(args).clear_model_cache(None)
    return _removal_outcome("clear", report)


def _removal_outcome(command: str, report) -> Outcome:
    out = Outcome(command, data={"removed": list(report.removed), "absent": list(report.absent), "bytes_freed": report.bytes_freed})
    out.lines += [f"removed {name}" for name in report.removed]
    out.lines += [f"not in the cache: {name}" for name in report.absent]
    out.lines.append(f"freed {human_size(report.bytes_freed)}")
    return out


def cmd_warm(args: argparse.Namespace) -> Outcome:
    from .warm import warm

    return warm(args, manager_for(args))


def cmd_verify(args: argparse.Namespace) -> Outcome:
    from .manager import not_available_error
    from .verify import select, verify_models

    mgr = manager_for(args)
    out = Outcome("verify")
    for rep in verify_models(mgr, select(mgr, args.names, args.set_name), deep=args.deep, repair=args.repair):
        out.models.append(model_json(rep.after) | {"repaired": list(rep.repaired), "before": rep.before.status})
        for f in rep.before.files:
            mark = " (repaired)" if f.name in rep.repaired else ""
            out.lines.append(f"{rep.model:<28} {f.state:<13} {f.name}{mark}{'  ' + f.detail if f.detail else ''}")
        if rep.after.status == "unpinned":  # verify reports it like any failure: exit 1
            out.fail(ModelNotAvailableError("no pinned commit or file list to verify against", model=rep.model,
                                            status="unpinned", hint=f"lyricsub-hub lock {rep.model}"))
        elif not rep.ok:
            out.fail(not_available_error(rep.after))
    if not out.models:
        out.lines.append("nothing in the cache to verify (name models to check them anyway)")
    return out


def cmd_lock(args: argparse.Namespace) -> Outcome:
    from pathlib import Path

    from .index import default_index_path
    from .lockfile import lock

    path = Path(args.index) if args.index else default_index_path()
    results = lock(path, args.names, update=args.update, endpoint=args.endpoint, token=None,
                   cache_dir=Path(args.cache_dir) if args.cache_dir else None)
    out = Outcome("lock", data={"index": str(path)})
    for res in results:
        out.models.append({"name": res.model, "old_revision": res.old_revision, "revision": res.new_revision,
                           "changed": res.changed, "files": [vars(f) for f in res.files]})
        if not res.changed:
            out.lines.append(f"{res.model}: unchanged at {res.new_revision[:12]}")
            continue
        out.lines.append(f"{res.model}: {(res.old_revision or 'unpinned')[:12]} -> {res.new_revision[:12]}")
        out.lines += [f"  {f.change:<8} {f.name}" + (f"  {(f.old_sha256 or '')[:12]} -> {(f.new_sha256 or '')[:12]}" if f.change == "changed" else "")
                      for f in res.files if f.change != "same"]
    return out


def cmd_load(args: argparse.Namespace) -> Outcome:
    from .loading import load_and_smoke

    mgr = manager_for(args)
    out = Outcome("load")
    for name in args.names:
        try:
            rep = load_and_smoke(mgr, name, device=args.device)
        except LyricsubError as exc:
            out.fail(exc)
            continue
        out.models.append({"name": rep.name, "status": "loaded", "path": str(mgr.get_model_path(rep.name)), "device": rep.device,
                           "load_seconds": round(rep.load_seconds, 3), "run_seconds": round(rep.run_seconds, 3), "summary": rep.summary})
        out.lines.append(f"{rep.name:<28} {rep.device:<7} load {rep.load_seconds:.2f}s  run {rep.run_seconds:.2f}s  {rep.summary}")
    return out


HANDLERS: dict[str, Handler] = {
    "list": cmd_list, "status": cmd_status, "info": cmd_info, "path": cmd_path,
    "rm": cmd_rm, "clear": cmd_clear, "warm": cmd_warm,
    "verify": cmd_verify, "lock": cmd_lock, "load": cmd_load,
}
