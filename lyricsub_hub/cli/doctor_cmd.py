"""`lyricsub-hub doctor`: one screen that answers "will inference work here, offline, now?" (checks: doctor.py)."""

from __future__ import annotations

from ..core.text import printable
from ..errors import LyricsubError
from .context import Context
from .output import Outcome, model_json

_LABEL = {"ok": "ok", "warning": "warn", "problem": "PROBLEM"}


def cmd_doctor(ctx: Context) -> Outcome:
    from ..doctor import examine

    args = ctx.args
    # the environment as the user started the command, where the CLI keeps it (main() sets telemetry defaults and,
    # with --offline, the offline switches itself); else the one this process has now
    environ = ctx.environ_at_start
    report = examine(args.index, cache_dir=args.cache_dir, names=args.names, set_name=args.set_name,
                     endpoint=args.endpoint, environ=environ)
    counts = report.counts()
    verdict = "problem" if counts["problem"] else "warning" if counts["warning"] else "ok"
    out = Outcome("doctor", data={
        "verdict": verdict, "summary": counts, "cache_dir": str(report.cache_dir), "state_dir": str(report.state_dir),
        "endpoint": report.endpoint, "offline": report.offline, "seconds": round(report.seconds, 3),
        "findings": [{"check": f.check, "level": f.level, "model": f.model, "message": f.message, "hint": f.hint,
                      "details": dict(f.details)} for f in report.findings]})
    levels = {f.model: f for f in report.findings if f.check == "model"}
    for st in report.statuses:
        row = levels.get(st.name)
        out.models.append(model_json(st) | {"level": row.level if row else None, "ref": (row.details.get("ref") if row else None)})
    out.lines.append(f"lyricsub-hub doctor: cache {report.cache_dir}, endpoint {report.endpoint}"
                     f"{' (offline)' if report.offline else ''}")
    for f in report.findings:
        who = f"{f.model}: " if f.model else ""
        fix = f"  (fix: {f.hint})" if f.hint and f.level != "ok" else ""
        out.lines.append(printable(f"  {_LABEL[f.level]:<8} {f.check:<10} {who}{f.message}{fix}"))
    if counts["problem"]:
        out.lines.append(f"verdict: {plural(counts['problem'], 'problem')}, {plural(counts['warning'], 'warning')}: "
                         f"inference will not work here offline until the problems are fixed ({report.seconds:.1f}s)")
    else:
        extra = f"; {plural(counts['warning'], 'warning')} worth a look" if counts["warning"] else ""
        out.lines.append(f"verdict: ready: inference works here offline now{extra} ({report.seconds:.1f}s)")
    for f in report.problems:
        out.errors.append(LyricsubError(f.message, model=f.model, hint=f.hint))
    out.exit_code = 1 if report.problems else 0
    out.errors_shown = "" if report.problems else None  # the findings and the verdict above said it all
    return out


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
