"""The `lyricsub-hub` command: one table of commands, argparse built from it, one handler per command, one renderer.

Handlers live in one module per command group, take a Context (cli/context.py) and return an Outcome;
output.py prints it. Expected failures end as one line and a documented exit code, never a traceback. A
command's module is imported only when it runs, so `lyricsub-hub path NAME` starts in a few milliseconds over
bare Python.

Defaults, one rule for all: a command that acts on models (status, warm, load, export, doctor) and names none
uses the index's `default` set; `list` shows every model, `verify` what the cache holds, `lock` every model.
Every command that names models also gets what they `requires` (index.select). `rm` and `clear` remove only
after --yes or a yes at the terminal's prompt, and both take --dry-run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module

from .. import __version__
from ..errors import EXIT_CANCELLED, EXIT_USAGE, DownloadCancelled, LyricsubError
from .context import Context

TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from .output import Outcome

__all__ = ["COMMANDS", "Command", "Context", "build_parser", "main", "run"]


@dataclass(frozen=True)
class Command:
    """One row of the command table: everything the parser, the start-up and the dispatch need to know."""

    help: str
    module: str  # cli/<module>.py holds cmd_<name>; imported only when the command runs
    arguments: Callable[[argparse.ArgumentParser], None]
    loads_libraries: bool = False  # may import the speech libraries: keep their log chatter off stderr
    every_start: bool = False  # called by containers on every start: parsed without argparse, no SIGTERM handler

    def handler(self, name: str) -> Callable[[Context], Outcome]:
        handler: Callable[[Context], Outcome] = getattr(import_module(f"{__name__}.{self.module}"), f"cmd_{name}")
        return handler


# Global options, accepted before or after the command: (flag, dest, metavar or None for a switch, help)
GLOBALS: tuple[tuple[str, str, str | None, str], ...] = (
    ("--index", "index", "FILE", "model index (default: $LYRICSUB_MODEL_INDEX or the bundled one)"),
    ("--cache-dir", "cache_dir", "DIR", "huggingface_hub cache (default: $HF_HUB_CACHE or $HF_HOME/hub)"),
    ("--offline", "offline", None, "never touch the network (sets HF_HUB_OFFLINE=1)"),
    ("--json", "json", None, "print JSON instead of text"),
    ("--endpoint", "endpoint", "URL", "Hub or mirror endpoint (default: $HF_ENDPOINT or huggingface.co)"),
)
SET_HELP = "a set of models from the index, e.g. default (see `lyricsub-hub list`)"


def _names(p: argparse.ArgumentParser, *, default: str = "the default set") -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help=f"models, family:variant or a variant alone (none: {default})")
    p.add_argument("--set", dest="set_name", metavar="SET", help=SET_HELP)


def _list(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="set_name", metavar="SET", help=SET_HELP + " (default: every model)")


def _one(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="a model, family:variant or a variant alone")


def _removal(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="say what would be removed and freed, remove nothing")
    p.add_argument("--yes", action="store_true", help="remove without asking (needed where stdin is not a terminal)")


def _rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="+", metavar="NAME", help="models to remove at their pins (nothing else is touched)")
    _removal(p)


def _gc(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="say what would be removed and freed, remove nothing")
    p.add_argument("--max-size", metavar="SIZE", help="then remove least recently used models until the cache fits (e.g. 20G)")
    p.add_argument("--keep-set", metavar="SET", action="append", default=[], help="never remove models of this set (repeatable)")


def _device(p: argparse.ArgumentParser, default: str, what: str) -> None:
    p.add_argument("--device", default=default, help=f"{what}: cpu, cuda, cuda:N or auto (default {default})")


def _warm(p: argparse.ArgumentParser) -> None:
    _names(p)
    p.add_argument("--connections", "--workers", dest="connections", type=int, default=None, metavar="N",
                   help="the most connections at once, shared by all files and models (default 32; a run opens only as "
                        "many as raise its speed, and splits files of 8 MiB and more as it goes)")
    p.add_argument("--max-rate", metavar="RATE", help="bandwidth cap for the whole process, e.g. 20M = 20*10^6 bytes/s, "
                   "20MiB = 20*2^20 (default: $LYRICSUB_MAX_RATE, else none)")
    p.add_argument("--force", action="store_true", help="fetch every file again")
    p.add_argument("--keep-refs", action="store_true", help="leave refs/<branch> alone (a cache shared with other pins)")
    p.add_argument("--no-load", action="store_true", help="skip loading each model after download")
    _device(p, "cpu", "device for the load check")


def _load(p: argparse.ArgumentParser) -> None:
    _names(p)
    _device(p, "auto", "where to load")


def _verify(p: argparse.ArgumentParser) -> None:
    _names(p, default="every model the cache holds")
    p.add_argument("--deep", action="store_true", help="re-hash every file, ignoring verification records")
    p.add_argument("--repair", action="store_true", help="delete bad files and fetch them again")


def _lock(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="models to pin, with what they require (none: every model)")
    p.add_argument("--update", action="store_true", help="move entries to the newest commit of their branch")


def _export(p: argparse.ArgumentParser) -> None:
    _names(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the bundle: .tar, or .tar.zst compressed; - for stdout")
    p.add_argument("--deep", action="store_true", help="hash every file on the way, ignoring verification records "
                   "(without it, a file whose record still matches is copied unhashed; an import hashes every byte)")


def _import(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", metavar="FILE", help="a bundle written by export; - reads stdin")


COMMANDS: dict[str, Command] = {
    "list": Command("every model in the index with its cache status", "cache_cmds", _list),
    "status": Command("status of models with what they require (exit 1 unless all are available)", "cache_cmds", _names,
                      every_start=True),
    "info": Command("what the index says about a model and what the cache holds", "cache_cmds", _one),
    "path": Command("print the snapshot folder of an available model", "cache_cmds", _one, every_start=True),
    "rm": Command("remove models from the cache (through huggingface_hub's cache deletion)", "cache_cmds", _rm),
    "clear": Command("remove every model of the index from the cache (other models stay)", "cache_cmds", _removal),
    "gc": Command("remove what the index no longer pins, stale part files and unused blobs; optionally fit a size",
                  "gc_cmd", _gc),
    "warm": Command("download models and what they require so the app can start offline, then load-check each",
                    "warm_cmds", _warm, loads_libraries=True),
    "load": Command("load models from the cache on a device and run each once on a synthetic signal", "warm_cmds", _load,
                    loads_libraries=True),
    "verify": Command("check cached files against their pinned hashes (exit 1 on any failure)", "cache_cmds", _verify,
                      loads_libraries=True),
    "lock": Command("fill missing pins in the index from the Hub (commit, files, sizes, sha256)", "pin_cmds", _lock,
                    loads_libraries=True),
    "export": Command("write models and what they require (blobs, links, refs, a manifest) into one bundle file for "
                      "machines without network", "bundle_cmds", _export),
    "import": Command("put the models of a bundle into the cache, every byte checked against the index's pins",
                      "bundle_cmds", _import),
    "doctor": Command("will inference work here, offline, now? one screen of findings", "doctor_cmd", _names,
                      loads_libraries=True),
}


# -- parsing -----------------------------------------------------------------------------------------------
def _scan(argv: Sequence[str]) -> tuple[dict[str, Any], str | None, list[str]] | None:
    """argv split into global options, the command word and the rest, by GLOBALS alone; None where a global
    option lacks its value. The rest keeps its order (argparse re-reads it for every command but the fast two)."""
    takes = {flag: dest for flag, dest, metavar, _ in GLOBALS if metavar}
    switches = {flag: dest for flag, dest, metavar, _ in GLOBALS if not metavar}
    found: dict[str, Any] = {}
    command, rest = None, []
    it = iter(argv)
    for arg in it:
        if arg in takes:
            value = next(it, None)
            if value is None or value.startswith("-"):
                return None
            found[takes[arg]] = value
        elif arg in switches:
            found[switches[arg]] = True
        elif command is None and not arg.startswith("-"):
            command = arg
        else:
            rest.append(arg)
    return found, command, rest


def _fast(argv: Sequence[str]) -> Any:
    """`path NAME` and `status [NAME...]` with plain global options, parsed without argparse (a container
    entrypoint calls these on every start); anything else returns None and goes through argparse."""
    scanned = _scan(argv)
    if scanned is None:
        return None
    found, command, rest = scanned
    if command not in COMMANDS or not COMMANDS[command].every_start or any(a.startswith("-") for a in rest):
        return None
    if command == "path" and len(rest) != 1:
        return None
    from types import SimpleNamespace

    args = SimpleNamespace(**{dest: None if metavar else False for _, dest, metavar, _ in GLOBALS})
    vars(args).update(found, command=command, names=rest, set_name=None, name=rest[0] if command == "path" else None)
    return args


def _formatter() -> type[argparse.HelpFormatter]:
    import argparse

    class _Formatter(argparse.HelpFormatter):
        """argparse would import shutil (with bz2 and lzma) for the terminal width on every start; os has it."""

        def __init__(self, prog: str, **kw: Any) -> None:
            try:
                columns = int(os.environ.get("COLUMNS") or os.get_terminal_size(sys.stderr.fileno()).columns)
            except (OSError, ValueError):
                columns = 80
            kw.setdefault("width", max(40, columns - 2))
            super().__init__(prog, **kw)

    return _Formatter


def _globals(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The global options; on the command's parser they default to SUPPRESS so a value given before the command
    is not overwritten by the default after it."""
    import argparse

    for flag, dest, metavar, help_text in GLOBALS:
        default = argparse.SUPPRESS if suppress else (None if metavar else False)
        if metavar:
            parser.add_argument(flag, dest=dest, default=default, metavar=metavar, help=help_text)
        else:
            parser.add_argument(flag, dest=dest, action="store_true", default=default, help=help_text)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (only=COMMAND) the globals and that command alone: a start in a blink."""
    import argparse

    formatter = _formatter()
    parser = argparse.ArgumentParser(prog="lyricsub-hub", description="Pinned, verified, offline-ready models for Demucs + WhisperX.",
                                     formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"lyricsub-hub {__version__}")
    _globals(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False, formatter_class=formatter)
    _globals(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, command in COMMANDS.items():
        if only is None or name == only:
            command.arguments(sub.add_parser(name, parents=[common], help=command.help, description=command.help,
                                             formatter_class=formatter))
    return parser


# -- running -----------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _fast(argv)
    if args is None:
        scanned = _scan(argv)
        word = scanned[1] if scanned else None
        parser = build_parser(word if word in COMMANDS and "-h" not in argv and "--help" not in argv else None)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse already printed usage
            return EXIT_USAGE if exc.code not in (0, None) else 0
    from ..core.env import go_offline, quiet_hub

    command = COMMANDS[args.command]
    environ_at_start = dict(os.environ)  # before our own defaults below: doctor judges the user's environment
    if args.offline:  # ...as the user asked for it: --offline is their HF_HUB_OFFLINE=1
        environ_at_start["HF_HUB_OFFLINE"] = "1"
    quiet_hub()
    if args.offline:
        go_offline()
    if args.endpoint:
        os.environ["HF_ENDPOINT"] = args.endpoint
    if not command.every_start:  # nothing to interrupt in the two a container calls on every start
        _sigterm_as_interrupt()
    if command.loads_libraries and not os.environ.get("LYRICSUB_VERBOSE"):
        _quiet_libraries()
    ctx = Context(args, environ_at_start=environ_at_start)
    from .output import Outcome, emit

    try:
        _check_endpoint(args)
        outcome = command.handler(args.command)(ctx)
    except LyricsubError as exc:
        outcome = Outcome(args.command)
        outcome.fail(exc)
    except OSError as exc:  # this machine's disk refused a write (permissions, read-only, full): one line, exit 4
        outcome = Outcome(args.command)
        outcome.fail(_local(exc, args))
    except KeyboardInterrupt:
        outcome = Outcome(args.command)
        outcome.fail(DownloadCancelled("cancelled; partial downloads are kept and the same command resumes them"))
        outcome.exit_code = EXIT_CANCELLED
    return emit(outcome, ctx.json)


def _local(exc: OSError, args: Any) -> LyricsubError:
    from ..core.env import resolve_cache_dir, resolve_state_dir
    from ..errors import local_error

    error = local_error(exc, cache_dir=resolve_cache_dir(args.cache_dir), state_dir=resolve_state_dir())
    if error is None:
        raise exc
    return error


def _check_endpoint(args: Any) -> None:
    """A malformed --endpoint or HF_ENDPOINT is one line and exit 2 before a command that talks to it starts."""
    url = os.environ.get("HF_ENDPOINT", "")
    if args.command in ("warm", "verify", "lock", "doctor") and url.strip():
        from ..core.env import endpoint_problem
        from ..errors import UsageError

        problem = endpoint_problem(url.strip().rstrip("/"))
        if problem:
            raise UsageError(f"bad endpoint {url.strip()}: {problem}",
                             hint="--endpoint https://huggingface.co (a scheme, a host, an optional port and path)")


def _quiet_libraries() -> None:
    """The speech libraries log and warn a lot on load (torchcodec, Lightning upgrades, VAD info);
    the CLI keeps stderr for what the user must act on."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.disable(logging.WARNING)  # libraries set their own logger levels at import; this outranks them


def _sigterm_as_interrupt() -> None:
    import signal

    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread (tests calling main from a worker)
        pass


def run() -> None:
    sys.exit(main())
