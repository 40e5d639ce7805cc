"""Everything the command line prints, in one place: human text, the one versioned JSON envelope, warm's
JSON events (envelope-shaped, one per line), and progress bars.

Handlers return an Outcome of typed results; nothing else in the package prints.
Data goes to stdout; hints, progress and errors go to stderr.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..core.text import human_size, printable
from ..errors import LyricsubError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, TextIO

SCHEMA = 1
_PRECEDENCE = [130, 4, 3, 2, 5, 1, 0]


@dataclass
class Outcome:
    """What a command produced, rendered once at the end (warm's events are streamed as they happen)."""

    command: str
    models: list[dict[str, Any]] = field(default_factory=list)  # JSON rows, built by the helpers below
    lines: list[str] = field(default_factory=list)  # human text for stdout
    errors: list[LyricsubError] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # extra top-level JSON keys of this command
    exit_code: int = 0
    streamed: bool = False  # warm --json printed its events as they came: the envelope ends them as one more event
    notes: list[str] = field(default_factory=list)  # more words for stderr after the errors (text only)
    errors_shown: str | None = None  # the table already showed each error: stderr gets this line instead ("": none)

    def fail(self, exc: LyricsubError) -> None:
        self.errors.append(exc)
        self.exit_code = worst(self.exit_code, exc.exit_code)


def worst(a: int, b: int) -> int:
    rank = {code: i for i, code in enumerate(_PRECEDENCE)}
    return a if rank.get(a, 6) <= rank.get(b, 6) else b


# -- JSON ------------------------------------------------------------------------------------------
def error_json(exc: LyricsubError) -> dict[str, Any]:
    return {"code": exc.code, "model": exc.model, "message": exc.message, "hint": exc.hint,
            "fix": exc.fix.as_json() if exc.fix is not None else None, "exit_code": exc.exit_code}


def envelope(out: Outcome) -> dict[str, Any]:
    body = {"schema": SCHEMA, "command": out.command, "ok": out.exit_code == 0, "exit_code": out.exit_code,
            "models": out.models, "errors": [error_json(e) for e in out.errors]}
    body.update(out.data)
    return body


def event(command: str, kind: str, **fields: Any) -> dict[str, Any]:
    """One streamed event, shaped like the envelope: schema, command, event, then its fields."""
    return {"schema": SCHEMA, "command": command, "event": kind, **fields}


def _default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def write_json(obj: dict[str, Any], stream: TextIO | None = None) -> None:
    import json

    stream = stream or sys.stdout
    stream.write(json.dumps(obj, default=_default) + "\n")
    stream.flush()


# -- rendering at the end ------------------------------------------------------------------------
def emit(out: Outcome, as_json: bool) -> int:
    """Print the outcome; after streamed events (warm --json) the envelope is the last event line."""
    if as_json:
        write_json(event(out.command, "summary") | envelope(out) if out.streamed else envelope(out))
    else:
        if out.lines:  # every line may carry a value from outside (a file name, a mirror's message): escaped
            sys.stdout.write("".join(printable(line) + "\n" for line in out.lines))
        sys.stdout.flush()
        if out.errors and out.errors_shown is not None:
            sys.stderr.write(f"lyricsub-hub: {out.errors_shown}\n" if out.errors_shown else "")
        elif out.errors:
            sys.stderr.write("".join(f"lyricsub-hub: {exc}\n" for exc in out.errors))
        sys.stderr.write("".join(f"lyricsub-hub: {text}\n" for text in out.notes))
    sys.stdout.flush()
    return out.exit_code


def note(text: str, *, quiet: bool = False) -> None:
    """A line on stderr now, before a slow step, so a person at a terminal knows what is happening. Not with
    --json, and not where stderr is no terminal: a script gets one line per failure, nothing else."""
    if not quiet and sys.stderr.isatty():
        sys.stderr.write(f"lyricsub-hub: {text}\n")
        sys.stderr.flush()


def confirm(question: str) -> bool | None:
    """Ask on the terminal; None where stdin or stderr is not a terminal (then only --yes removes)."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return False
    return answer.strip().lower() in ("y", "yes")


# -- rows shared by several commands -------------------------------------------------------------
def model_json(st: Any) -> dict[str, Any]:
    return {
        "name": st.name, "status": st.status, "path": str(st.path) if st.path else None,
        "family": st.family, "repo": st.repo, "revision": st.revision, "pinned": st.pinned,
        "expected_bytes": st.expected_bytes, "present_bytes": st.present_bytes, "resumable_bytes": st.resumable_bytes,
        "cache": cache_json(st),
        "files": [
            {"name": f.name, "state": f.state, "size": f.actual_size, "expected_size": f.expected_size,
             "sha256": f.expected_sha256, "checked": f.checked, "detail": f.detail or None}
            for f in st.files
        ],
    }


def cache_json(st: Any) -> dict[str, Any] | None:
    """Which cache a model was looked up in: the user's own, or a read-only site cache (LYRICSUB_SITE_CACHE)."""
    if st.cache_dir is None:
        return None
    return {"kind": "site" if st.site else "own", "dir": str(st.cache_dir)}


def warm_line(name: str, result: Any) -> str:
    return f"{name:<28} available  fetched {human_size(result.bytes_fetched)} in {result.seconds:.1f}s  {result.local_path}"


def load_row(report: Any) -> dict[str, Any]:
    return {"device": report.device, "load_seconds": round(report.load_seconds, 3),
            "run_seconds": round(report.run_seconds, 3), "summary": report.summary}


def loaded_line(name: str, report: Any, st: Any = None) -> str:
    where = f"  (from the site cache {st.cache_dir})" if st is not None and st.site else ""
    return (f"{name:<28} loaded on {report.device} in {report.load_seconds:.2f}s, ran in {report.run_seconds:.2f}s: "
            f"{report.summary}{where}")


def skipped_load_line(name: str, missing: str) -> str:
    return f"{name:<28} load check skipped: {missing} is not installed (pip install 'lyricsub-hub[full]')"


def removal_lines(report: Any, *, dry_run: bool) -> list[str]:
    verb, freed = ("would remove", "would free") if dry_run else ("removed", "freed")
    return ([f"{verb} {name}" for name in report.removed] + [f"not in the cache: {name}" for name in report.absent]
            + [f"{freed} {human_size(report.bytes_freed)}"])


# -- info and verify ---------------------------------------------------------------------------------------
def info_row(meta: Any) -> dict[str, Any]:
    return model_json(meta.status) | {"license": meta.license, "gated": meta.gated, "branch": meta.branch,
                                      "description": meta.description}


def info_lines(meta: Any) -> list[str]:
    st = meta.status
    lines = [
        f"name:      {meta.name}", f"family:    {meta.family}", f"repo:      {meta.repo}",
        f"revision:  {meta.revision or '(not pinned)'}", f"license:   {printable(meta.license or '?')}",
        f"gated:     {'yes (accept the terms on the repo page, set HF_TOKEN)' if meta.gated else 'no'}",
        f"status:    {st.status}" + (f" ({st.reason})" if st.reason else ""),
        f"size:      {human_size(meta.total_size)}", f"path:      {st.path or '-'}", "files:",
    ]
    for f in st.files:
        size = f.actual_size if f.actual_size is not None else f.expected_size
        lines.append(f"  {printable(f.name):<40} {human_size(size):>9}  {f.state}")
    return lines


def verify_row(rep: Any) -> dict[str, Any]:
    return model_json(rep.after) | {"repaired": list(rep.repaired), "before": rep.before.status}


def verify_nothing() -> list[str]:
    return ["nothing in the cache to verify (name models to check them anyway)"]


def verify_lines(rep: Any) -> list[str]:
    """One line per file as verify found it, marked where a repair fetched it again."""
    return [f"{rep.model:<28} {f.state:<13} {printable(f.name)}{' (repaired)' if f.name in rep.repaired else ''}"
            f"{'  ' + f.detail if f.detail else ''}" for f in rep.before.files]


# -- lock ---------------------------------------------------------------------------------------------------
def lock_row(res: Any) -> dict[str, Any]:
    return {"name": res.model, "old_revision": res.old_revision, "revision": res.new_revision, "changed": res.changed,
            "files": [vars(f) for f in res.files]}


def lock_lines(res: Any) -> list[str]:
    """What lock changed for a model, file by file (nothing but a line when it is unchanged)."""
    if not res.changed:
        return [f"{res.model}: unchanged at {res.new_revision[:12]}"]
    return [f"{res.model}: {(res.old_revision or 'unpinned')[:12]} -> {res.new_revision[:12]}"] + [
        f"  {f.change:<8} {f.name}" + (f"  {(f.old_sha256 or '')[:12]} -> {(f.new_sha256 or '')[:12]}"
                                       if f.change == "changed" else "")
        for f in res.files if f.change != "same"]


# -- gc -----------------------------------------------------------------------------------------------------
def gc_row(r: Any) -> dict[str, Any]:
    return {"kind": r.kind, "repo": r.repo, "target": r.target, "models": list(r.models), "files": list(r.files),
            "reason": r.reason, "bytes": r.size}


def gc_skip_row(s: Any) -> dict[str, Any]:
    return {"kind": s.kind, "repo": s.repo, "target": s.target, "reason": s.reason, "hint": s.hint}


def gc_line(verb: str, item: Any) -> str:
    if item.kind in ("revision", "model"):
        what = f"{item.repo}@{item.target[:12]}"
    else:
        what = f"{item.repo} {item.target[:12]}{'…' if len(item.target) > 12 else ''}"
    size = getattr(item, "size", None)
    models = getattr(item, "models", ())
    tail = f" ({', '.join(models)})" if models else ""
    shown = f"{human_size(size):>9}" if size is not None else " " * 9
    return printable(f"{verb:<12} {item.kind:<8} {what + tail:<44} {shown}  {item.reason}")


def gc_summary(plan: Any, freed: int, after: int, max_size: int | None, *, dry_run: bool) -> str:
    budget = f", budget {human_size(max_size)}" if max_size is not None else ""
    if dry_run:
        return (f"would free {human_size(plan.to_free)}: the cache would hold {human_size(after)} "
                f"(now {human_size(plan.size_before)}{budget})")
    return f"freed {human_size(freed)}: the cache holds {human_size(after)} (was {human_size(plan.size_before)}{budget})"


# -- doctor -------------------------------------------------------------------------------------------------
_LEVEL = {"ok": "ok", "warning": "warn", "problem": "PROBLEM"}


def doctor_json(report: Any) -> dict[str, Any]:
    counts = report.counts()
    verdict = "problem" if counts["problem"] else "warning" if counts["warning"] else "ok"
    return {"verdict": verdict, "summary": counts, "cache_dir": str(report.cache_dir), "state_dir": str(report.state_dir),
            "endpoint": report.endpoint, "offline": report.offline, "seconds": round(report.seconds, 3),
            "findings": [{"check": f.check, "level": f.level, "model": f.model, "message": f.message, "hint": f.hint,
                          "details": dict(f.details)} for f in report.findings]}


def doctor_rows(report: Any) -> list[dict[str, Any]]:
    levels = {f.model: f for f in report.findings if f.check == "model"}
    return [model_json(st) | {"level": levels[st.name].level if st.name in levels else None,
                              "ref": levels[st.name].details.get("ref") if st.name in levels else None}
            for st in report.statuses]


def doctor_lines(report: Any) -> list[str]:
    """The one screen: where, one line per finding with its fix, then the verdict."""
    counts = report.counts()
    lines = [f"lyricsub-hub doctor: cache {report.cache_dir}, endpoint {report.endpoint}"
             f"{' (offline)' if report.offline else ''}"]
    for f in report.findings:
        who = f"{f.model}: " if f.model else ""
        fix = f"  (fix: {f.hint})" if f.hint and f.level != "ok" else ""
        lines.append(printable(f"  {_LEVEL[f.level]:<8} {f.check:<10} {who}{f.message}{fix}"))
    if counts["problem"]:
        lines.append(f"verdict: {plural(counts['problem'], 'problem')}, {plural(counts['warning'], 'warning')}: "
                     f"inference will not work here offline until the problems are fixed ({report.seconds:.1f}s)")
    else:
        extra = f"; {plural(counts['warning'], 'warning')} worth a look" if counts["warning"] else ""
        lines.append(f"verdict: ready: inference works here offline now{extra} ({report.seconds:.1f}s)")
    return lines


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# -- export and import ------------------------------------------------------------------------------------
def export_row(m: Any) -> dict[str, Any]:
    return {"name": m.name, "status": "exported", "path": None, "repo": m.repo, "revision": m.revision,
            "files": [{"name": f.name, "size": f.size, "sha256": f.sha256, "blob": f.blob} for f in m.files]}


def bundle_json(report: Any, path: Path | None) -> dict[str, Any]:
    return {"path": None if path is None else str(path), "bytes": report.written, "payload_bytes": report.payload_bytes,
            "hashed_bytes": report.hashed, "blobs": report.blobs,
            "compressed": report.compressed, "seconds": round(report.seconds, 3)}


def export_lines(output: str, report: Any) -> list[str]:
    vouched = report.payload_bytes - report.hashed
    checked = (f"{human_size(report.payload_bytes)} of files hashed" if not vouched else
               f"{human_size(report.payload_bytes)} of files ({human_size(vouched)} vouched for by verification records, "
               f"{human_size(report.hashed)} hashed; the import hashes every byte)")
    return [f"wrote {output}: {len(report.models)} model(s), {checked}, "
            f"{human_size(report.written)} written in {report.seconds:.1f}s",
            f"on the other machine: lyricsub-hub import {output}"]


def import_row(m: Any, st: Any | None) -> dict[str, Any]:
    """A model of a bundle: its cache row (or a bare one for a name the index lacks) and what the import did."""
    row = model_json(st) if st is not None else {"name": m.name, "status": "unknown", "path": None, "files": []}
    return row | {"import": m.state, "files_imported": m.files, "bytes_imported": m.bytes}


def import_line(m: Any, row: dict[str, Any], width: int) -> str | None:
    """The line for an imported or already present model; None for one that failed (its error says it)."""
    if m.state == "imported":
        return f"{printable(m.name):<{width}} imported   {m.files} file(s), {human_size(m.bytes)}  {row.get('path') or ''}"
    if m.state == "present":
        return f"{printable(m.name):<{width}} already in the cache, left as it was"
    return None


def import_summary(report: Any) -> list[str]:
    empty = [] if report.models else ["the bundle holds no models"]
    return [*empty, f"read {human_size(report.bytes_read)} in {report.seconds:.1f}s"]


def status_line(st: Any, width: int = 28) -> str:
    size = human_size(st.expected_bytes)
    tail = (f"{st.path}  (site cache)" if st.site else str(st.path)) if st.path else advice(st)
    return f"{printable(st.name):<{width}} {st.status:<10} {size:>9}  {tail}"


def advice(st: Any) -> str:
    if st.status == "unpinned":
        return f"run: lyricsub-hub lock {st.name}"
    if st.status == "corrupt":
        return f"run: lyricsub-hub verify --repair {st.name}"
    extra = f" ({human_size(st.resumable_bytes)} resumable)" if st.resumable_bytes else ""
    return f"run: lyricsub-hub warm {st.name}{extra}"


# -- progress while warming -------------------------------------------------------------------------
class JsonEvents:
    """warm --json: one envelope-shaped event per line on stdout."""

    KINDS: ClassVar[dict[str, str]] = {"plan": "start", "download": "progress", "file_done": "file_done", "done": "model_done",
             "error": "error", "cancelled": "error", "verify": "verify"}

    def __init__(self, command: str = "warm") -> None:
        import threading

        self.command = command
        self.lock = threading.Lock()

    def __call__(self, ev: Any) -> None:
        with self.lock:
            write_json(event(self.command, self.KINDS[ev.stage], model=ev.model, file=ev.file, bytes_done=ev.bytes_done,
                             bytes_total=ev.bytes_total, model_bytes_done=ev.model_bytes_done,
                             model_bytes_total=ev.model_bytes_total, speed=round(ev.speed, 1),
                             eta=None if ev.eta is None else round(ev.eta, 2), message=ev.message or None,
                             time=round(_now(), 3)))


class Bars:
    """Progress for people: one bar per model and one per active file on a terminal. Elsewhere (CI, container
    logs) plain lines: one when a model starts, one every `interval` seconds while its bytes flow, one per finished
    file. Thread-safe, and every bar is closed before any other line is written."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 5.0, clock: Any = None) -> None:
        import threading
        import time

        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.ncols, self.nrows = _size(self.stream)
        self.lock = threading.RLock()
        self.models: dict[str, Any] = {}
        self.files: dict[tuple[str, str], Any] = {}
        self.interval = interval
        self.clock = clock or time.monotonic
        self.said: dict[str, float] = {}  # model -> when its last progress line was written

    def __call__(self, ev: Any) -> None:
        with self.lock:
            if not self.tty:
                self._line(ev)
            else:
                self._bars(ev)

    def _line(self, ev: Any) -> None:
        now = self.clock()
        if ev.stage == "plan":
            self.said[ev.model] = now
            self.stream.write(f"{ev.model}: fetching {human_size(ev.model_bytes_total or 0)}\n")
        elif ev.stage == "file_done":
            self.stream.write(printable(f"{ev.model}: {ev.file} done ({human_size(ev.bytes_total)})") + "\n")
        elif ev.stage == "download" and ev.message:  # a retry line quotes what a mirror said: escaped
            self.stream.write(printable(f"{ev.model}: {ev.file or ''} {ev.message}") + "\n")
        elif ev.stage == "download" and now - self.said.get(ev.model, now) >= self.interval:
            self.said[ev.model] = now
            self.stream.write(progress_line(ev) + "\n")
        else:
            return
        self.stream.flush()

    def _bars(self, ev: Any) -> None:
        from tqdm import tqdm

        if ev.stage in ("download", "file_done") and ev.file:
            bar = self.models.get(ev.model)
            if bar is None and ev.model_bytes_total:
                bar = self.models[ev.model] = tqdm(total=ev.model_bytes_total, desc=ev.model, unit="B", unit_scale=True,
                                                   leave=False, file=self.stream, mininterval=0.2, ncols=self.ncols, nrows=self.nrows)
            if bar is not None:
                bar.update(ev.model_bytes_done - bar.n)
            key = (ev.model, ev.file)
            fbar = self.files.get(key)
            if fbar is None and ev.stage == "download" and ev.bytes_total:
                fbar = self.files[key] = tqdm(total=ev.bytes_total, desc="  " + ev.file[-28:], unit="B", unit_scale=True,
                                              leave=False, file=self.stream, mininterval=0.2, ncols=self.ncols, nrows=self.nrows)
            if fbar is not None:
                fbar.update(ev.bytes_done - fbar.n)
                if ev.stage == "file_done":
                    fbar.close()
                    del self.files[key]
            if ev.message:
                self._write(f"{ev.model}: {ev.file} {ev.message}")
        if ev.stage in ("done", "error", "cancelled"):
            self._close_model(ev.model)

    def _write(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(printable(text), file=self.stream)

    def _close_model(self, model: str) -> None:
        for key in [k for k in self.files if k[0] == model]:
            self.files.pop(key).close()
        bar = self.models.pop(model, None)
        if bar is not None:
            bar.close()
            self.stream.write("\r\x1b[K")

    def close(self) -> None:
        """Close every bar (files first), then put the cursor back at the start of a cleared line: tqdm leaves it
        after the blanks it wrote, where the next line of output would otherwise start."""
        with self.lock:
            for key in list(self.files):
                self.files.pop(key).close()
            for model in list(self.models):
                self.models.pop(model).close()
            if self.tty:
                self.stream.write("\r\x1b[K")
            self.stream.flush()


def progress_line(ev: Any) -> str:
    """One model's progress as a plain line: bytes, share, speed, time left."""
    total = ev.model_bytes_total
    share = f" of {human_size(total)} ({100 * ev.model_bytes_done // total}%)" if total else ""
    left = f", about {ev.eta:.0f}s left" if ev.eta is not None else ""
    return f"{ev.model}: {human_size(ev.model_bytes_done)}{share} at {human_size(ev.speed)}/s{left}"


def _now() -> float:
    import time

    return time.time()


def _size(stream: TextIO) -> tuple[int, int]:
    """The terminal's columns and rows; 80x24 where it reports none (tqdm draws nothing on a 0x0 terminal,
    which is what a pseudo-terminal nobody sized, as in some container runs, reports)."""
    import os

    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return 80, 24
    return size.columns or 80, size.lines or 24
