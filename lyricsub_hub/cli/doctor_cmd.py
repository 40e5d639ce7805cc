"""`lyricsub-hub doctor`: one screen that answers "will inference work here, offline, now?" (checks: doctor.py)."""

from __future__ import annotations

from ..errors import LyricsubError
from .context import Context
from .output import Outcome, doctor_json, doctor_lines, doctor_rows


def cmd_doctor(ctx: Context) -> Outcome:
    from ..doctor import examine

    args = ctx.args
    # the environment as the user started the command, where the CLI keeps it (main() sets telemetry defaults and,
    # with --offline, the offline switches itself); else the one this process has now
    environ = ctx.environ_at_start
    report = examine(args.index, cache_dir=args.cache_dir, names=args.names, set_name=args.set_name,
                     endpoint=args.endpoint, environ=environ)
    out = Outcome("doctor", data=doctor_json(report))
    out.models += doctor_rows(report)
    out.lines += doctor_lines(report)
    for f in report.problems:
        out.errors.append(LyricsubError(f.message, model=f.model, hint=f.hint))
    out.exit_code = 1 if report.problems else 0
    out.errors_shown = "" if report.problems else None  # the findings and the verdict above said it all
    return out
