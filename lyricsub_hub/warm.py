"""`lyricsub-hub warm`: download a set of models with progress, then (optionally) load-check them.

This is the CLI's side of warming: it chooses how to show progress (bars on a
terminal, plain lines otherwise, JSON lines with --json) and collects results.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .download import ModelDownloader
from .errors import DownloadCancelled, LyricsubError
from .events import DownloadProgress, DownloadResult
from .manager import ModelManager
from .render import Outcome, human_size, json_line, model_json

DEFAULT_SET = "default"


class _Display:
    """Progress for people: tqdm bars on a terminal, one line per finished file otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.bars: dict[str | None, Any] = {}

    def __call__(self, ev: DownloadProgress) -> None:
        if self.tty:
            self._bars(ev)
        elif ev.stage == "file_done":
            sys.stderr.write(f"{ev.model}: {ev.file} done ({human_size(ev.bytes_total)})\n")
        elif ev.stage == "download" and ev.message:
            sys.stderr.write(f"{ev.model}: {ev.file or ''} {ev.message}\n")

    def _bars(self, ev: DownloadProgress) -> None:
        from tqdm import tqdm

        if ev.stage in ("download", "file_done") and ev.file:
            total = self.bars.get(None)
            if total is None and ev.model_bytes_total:
                total = self.bars[None] = tqdm(total=ev.model_bytes_total, desc=ev.model, unit="B", unit_scale=True, position=0, leave=True)
            if total is not None:
                total.update(ev.model_bytes_done - total.n)
            bar = self.bars.get(ev.file)
            if bar is None and ev.bytes_total:
                bar = self.bars[ev.file] = tqdm(total=ev.bytes_total, desc=ev.file[-30:], unit="B", unit_scale=True, position=len(self.bars), leave=False)
            if bar is not None:
                bar.update(ev.bytes_done - bar.n)
        if ev.stage in ("done", "error", "cancelled"):
            self.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def _json_events(ev: DownloadProgress) -> None:
    kind = {"plan": "start", "download": "progress", "file_done": "file_done", "done": "model_done",
            "error": "error", "cancelled": "error", "verify": "verify"}[ev.stage]
    json_line({"event": kind, "model": ev.model, "file": ev.file, "bytes_done": ev.bytes_done, "bytes_total": ev.bytes_total,
               "model_bytes_done": ev.model_bytes_done, "model_bytes_total": ev.model_bytes_total,
               "speed": round(ev.speed, 1), "eta": None if ev.eta is None else round(ev.eta, 2), "message": ev.message or None,
               "time": round(time.time(), 3)})


def warm(args: argparse.Namespace, manager: ModelManager) -> Outcome:
    names, set_name = args.names, args.set_name
    if not names and not set_name:
        set_name = DEFAULT_SET
    specs = manager.index.expand(names, set_name)
    downloader = ModelDownloader(manager, workers=args.workers, transfer=args.transfer)
    display = None if args.json else _Display()
    downloader.set_progress_callback(_json_events if args.json else display)
    out = Outcome("warm")
    results: list[DownloadResult] = []
    try:
        for spec in specs:
            result = downloader.download_model(spec.name, force=args.force)
            results.append(result)
            st = manager.status(spec)
            out.models.append(model_json(st) | {"bytes_fetched": result.bytes_fetched, "seconds": round(result.seconds, 3)})
            if result.success:
                out.lines.append(f"{spec.name:<28} available  fetched {human_size(result.bytes_fetched)} in {result.seconds:.1f}s  {result.local_path}")
                if not args.no_load:
                    _load_check(args, manager, spec.name, out)
            else:
                out.fail(_as_error(result))
                if result.error_code in ("cancelled", "unreachable"):  # the next models would fail the same way
                    out.data["skipped"] = [s.name for s in specs[len(results):]]
                    break
    except KeyboardInterrupt:
        downloader.cancel_download()
        out.fail(DownloadCancelled("cancelled; partial downloads are kept and the same command resumes them",
                                   hint="lyricsub-hub warm " + " ".join(s.name for s in specs)))
    finally:
        if display is not None:
            display.close()
    out.data["bytes_fetched"] = sum(r.bytes_fetched for r in results)
    if args.json:
        from .render import envelope

        json_line({"event": "summary"} | envelope(out))
        out.data["_printed"] = True
    return out


def _load_check(args: argparse.Namespace, manager: ModelManager, name: str, out: Outcome) -> None:
    """Prove the model loads and runs once; skipped where its library is not installed."""
    from .loading import library_missing, load_and_smoke

    missing = library_missing(manager.spec(name).family)
    if missing:
        out.lines.append(f"{name:<28} load check skipped: {missing} is not installed (pip install 'lyricsub-hub[full]')")
        return
    try:
        report = load_and_smoke(manager, name, device=args.device)
    except LyricsubError as exc:
        out.fail(exc)
        return
    out.models[-1]["load"] = {"device": report.device, "load_seconds": round(report.load_seconds, 3),
                              "run_seconds": round(report.run_seconds, 3), "summary": report.summary}
    out.lines.append(f"{name:<28} loaded on {report.device} in {report.load_seconds:.2f}s, ran in {report.run_seconds:.2f}s: {report.summary}")


def _as_error(result: DownloadResult) -> LyricsubError:
    """download_model keeps the error it raised on every failed result; the fallback never should run."""
    return result.failure or LyricsubError(result.error or "download failed", model=result.model)
