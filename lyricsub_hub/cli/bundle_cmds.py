"""Bundles for machines without network: export (models into one tar file, or stdout) and import (a bundle file, or
stdin, into the cache, every byte checked against the index's pins; no network)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..core.text import printable
from ..errors import BundleError, Fix, UsageError
from .context import Context
from .output import Outcome, bundle_json, export_lines, export_row, import_line, import_row, import_summary


def cmd_export(ctx: Context) -> Outcome:
    from ..bundles.bundle import export_bundle, export_file, plan_export

    args = ctx.args
    example = Fix("export", "--set", "default", "-o", "models.tar.zst")
    to_stdout = args.output == "-"
    if to_stdout and ctx.json:
        raise UsageError("-o - writes the bundle to stdout, where --json would write too; drop one of them", hint=example)
    if to_stdout and sys.stdout.isatty():
        raise UsageError("refusing to write a bundle to a terminal; pipe it, or write a file with -o FILE", hint=example)
    mgr = ctx.manager()
    plan = plan_export(mgr.cache, mgr.index.select(args.names, args.set_name), deep=args.deep)
    again = " ".join(["lyricsub-hub export", *args.names, *(["--set", args.set_name] if args.set_name else [])])
    out = Outcome("export")
    if plan.problems:  # all or nothing: a bundle that silently lacks a model would fail far from here
        for problem in plan.problems:
            out.fail(problem)
        return out
    try:
        if to_stdout:
            with open(sys.stdout.fileno(), "wb", buffering=0, closefd=False) as raw:  # no buffer left half-written
                report = export_bundle(plan, raw)
        else:
            report = export_file(plan, Path(args.output))
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more may go to the broken pipe
        raise BundleError("the reader of the bundle went away before it was whole; it is not usable",
                          hint=f"{again} -o - | <a reader that takes all of it>") from None
    except OSError as exc:
        raise BundleError(f"cannot write the bundle {printable(args.output)}: {exc.strerror or exc}",
                          hint=f"{again} -o <a writable folder>/models.tar") from None
    out.models += [export_row(m) for m in report.models]
    out.data["bundle"] = bundle_json(report, None if to_stdout else Path(args.output).resolve())
    if not to_stdout:  # with -o - stdout is the bundle: nothing else may go there
        out.lines += export_lines(args.output, report)
    return out


def cmd_import(ctx: Context) -> Outcome:
    from ..bundles.bundle import import_bundle
    from ..errors import BundleFormatError

    args = ctx.args
    mgr = ctx.manager()
    if args.bundle == "-":
        if sys.stdin.isatty():
            raise UsageError("import - reads a bundle from stdin, which is a terminal",
                             hint="ssh HOST lyricsub-hub export NAME -o - | lyricsub-hub import -")
        source = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115 (closed below)
    else:
        try:
            source = open(args.bundle, "rb", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise BundleFormatError(f"cannot read the bundle {printable(args.bundle)}: {exc.strerror or exc}",
                                    hint=Fix("import", "FILE")) from None
    with source:
        report = import_bundle(mgr.cache, mgr.index, source)
    out = Outcome("import", data={"bytes_read": report.bytes_read, "seconds": round(report.seconds, 3)})
    width = max([len(m.name) for m in report.models] + [20]) + 1
    for m in report.models:
        spec = mgr.index.models.get(m.name)
        row = import_row(m, mgr.status(spec) if spec is not None else None)
        out.models.append(row)
        line = import_line(m, row, width)
        if line is not None:
            out.lines.append(line)
        elif m.error is not None:
            out.fail(m.error)
    for problem in report.problems:
        out.fail(problem)
    out.lines += import_summary(report)
    return out
