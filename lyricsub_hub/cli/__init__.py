"""The `lyricsub-hub` command: argparse wiring, then one handler per command, then one renderer.

Handlers live in one module per command group and return an Outcome; output.py
prints it. Expected failures end as one line and a documented exit code, never a
traceback. Command modules are imported only for the command that runs, so
`lyricsub-hub path NAME` starts in a few milliseconds over bare Python.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module

from .. import __version__
from ..errors import EXIT_CANCELLED, EXIT_USAGE, DownloadCancelled, LyricsubError

TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ..cache import Cache
    from ..index import ModelIndex
    from ..manager import ModelManager
    from .output import Outcome

# command -> (module, handler): the module is imported only when its command runs
HANDLERS = {
    "list": ("cache_cmds", "cmd_list"), "status": ("cache_cmds", "cmd_status"), "info": ("cache_cmds", "cmd_info"),
    "path": ("cache_cmds", "cmd_path"), "verify": ("cache_cmds", "cmd_verify"), "rm": ("cache_cmds", "cmd_rm"),
    "clear": ("cache_cmds", "cmd_clear"), "gc": ("gc_cmd", "cmd_gc"),
    "warm": ("warm_cmds", "cmd_warm"), "load": ("warm_cmds", "cmd_load"),
    "lock": ("pin_cmds", "cmd_lock"),
    "export": ("bundle_cmds", "cmd_export"), "import": ("bundle_cmds", "cmd_import"),
    "doctor": ("doctor_cmd", "cmd_doctor"),
}


@dataclass
class Context:
    """What a handler gets: the parsed arguments and, on first use, the manager they describe."""

    args: argparse.Namespace
    _manager: Any = field(default=None, repr=False)
    environ_at_start: dict[str, str] | None = field(default=None, repr=False)  # as the user started us (doctor)

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    def manager(self) -> ModelManager:
        if self._manager is None:
            from ..manager import ModelManager

            self._manager = ModelManager(self.args.index, self.args.cache_dir, endpoint=self.args.endpoint)
        return self._manager

    def cache_and_index(self) -> tuple[Cache, ModelIndex]:
        """What `path` and `status` need, without the manager and all it brings (a start in a blink)."""
        if self._manager is not None:
            return self._manager.cache, self._manager.index
        from ..cache import Cache
        from ..index import load_index

        cache = Cache.at(self.args.cache_dir)
        return cache, load_index(self.args.index, state_dir=cache.state_dir)


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


def _globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Global options, accepted before or after the command."""
    import argparse

    default = argparse.SUPPRESS if suppress else None
    flag = default if suppress else False
    parser.add_argument("--index", default=default, metavar="FILE", help="model index (default: $LYRICSUB_MODEL_INDEX or the bundled one)")
    parser.add_argument("--cache-dir", default=default, metavar="DIR", help="huggingface_hub cache (default: $HF_HUB_CACHE or $HF_HOME/hub)")
    parser.add_argument("--offline", action="store_true", default=flag, help="never touch the network (sets HF_HUB_OFFLINE=1)")
    parser.add_argument("--json", action="store_true", default=flag, help="print JSON instead of text")
    parser.add_argument("--endpoint", default=default, metavar="URL", help="Hub or mirror endpoint (default: $HF_ENDPOINT or huggingface.co)")


def _command(argv: Sequence[str]) -> str | None:
    """The command word of argv, skipping global options and their values; None when there is none."""
    takes_value = {"--index", "--cache-dir", "--endpoint"}
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


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
    for name, (help_text, arguments) in COMMANDS.items():
        if only is None or name == only:
            arguments(sub.add_parser(name, parents=[common], help=help_text, description=help_text, formatter_class=formatter))
    return parser


def _list(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="set_name", metavar="SET")


def _one(p: argparse.ArgumentParser) -> None:
    p.add_argument("name")


def _some(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="+", metavar="NAME")


def _clear(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="really remove them")


def _gc(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="say what would be removed and freed, remove nothing")
    p.add_argument("--max-size", metavar="SIZE", help="then remove least recently used models until the cache fits (e.g. 20G)")
    p.add_argument("--keep-set", metavar="SET", action="append", default=[], help="never remove models of this set (repeatable)")


def _warm(p: argparse.ArgumentParser) -> None:
    _names(p)
    p.add_argument("--connections", "--workers", dest="connections", type=int, default=None, metavar="N",
                   help="connections shared by all files and models (default 8; files of 8 MiB and more are split)")
    p.add_argument("--max-rate", metavar="RATE", help="bandwidth cap for the whole process, e.g. 20M = 20*10^6 bytes/s, "
                   "20MiB = 20*2^20 (default: $LYRICSUB_MAX_RATE, else none)")
    p.add_argument("--force", action="store_true", help="fetch every file again")
    p.add_argument("--keep-refs", action="store_true", help="leave refs/<branch> alone (a cache shared with other pins)")
    p.add_argument("--transfer", default="http", help="==SUPPRESS==")
    p.add_argument("--no-load", action="store_true", help="skip loading each model after download")
    p.add_argument("--device", default="cpu", help="device for the load check: cpu, cuda, cuda:N, auto (default cpu)")


def _load(p: argparse.ArgumentParser) -> None:
    _some(p)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default auto)")


def _verify(p: argparse.ArgumentParser) -> None:
    _names(p)
    p.add_argument("--deep", action="store_true", help="re-hash every file, ignoring verification records")
    p.add_argument("--repair", action="store_true", help="delete bad files and fetch them again")


def _lock(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--update", action="store_true", help="move entries to the newest commit of their branch")


def _export(p: argparse.ArgumentParser) -> None:
    _names(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the bundle: .tar, or .tar.zst compressed; - for stdout")


def _import(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", metavar="FILE", help="a bundle written by export; - reads stdin")


def _names(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--set", dest="set_name", metavar="SET")


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "list": ("every model in the index with its cache status", _list),
    "status": ("status of models (exit 1 unless all are available)", _names),
    "info": ("what the index says about a model and what the cache holds", _one),
    "path": ("print the snapshot folder of an available model", _one),
    "rm": ("remove models from the cache (through huggingface_hub's cache deletion)", _some),
    "clear": ("remove every model of the index from the cache (other models stay)", _clear),
    "gc": ("remove what the index no longer pins, stale part files and unused blobs; optionally fit a size", _gc),
    "warm": ("download models so the app can start offline (default set when none named)", _warm),
    "load": ("load models from the cache on a device and run each once on a synthetic signal", _load),
    "verify": ("check cached files against their pinned hashes (exit 1 on any failure)", _verify),
    "lock": ("fill missing pins in the index from the Hub (commit, files, sizes, sha256)", _lock),
    "export": ("write models (blobs, links, refs, a manifest) into one bundle file for machines without network", _export),
    "import": ("put the models of a bundle into the cache, every byte checked against the index's pins", _import),
    "doctor": ("will inference work here, offline, now? one screen of findings", _names),
}


def _fast(argv: list[str]) -> Any:
    """`path NAME` and `status NAME...` with plain global options, parsed without argparse (a container
    entrypoint calls these on every start); anything else returns None and goes through argparse."""
    from types import SimpleNamespace

    args = SimpleNamespace(index=None, cache_dir=None, endpoint=None, offline=False, json=False, command=None,
                           names=[], set_name=None, name=None)
    values = {"--index": "index", "--cache-dir": "cache_dir", "--endpoint": "endpoint"}
    it = iter(argv)
    for arg in it:
        if arg in values:
            value = next(it, None)
            if value is None or value.startswith("-"):
                return None
            setattr(args, values[arg], value)
        elif arg in ("--offline", "--json"):
            setattr(args, arg[2:], True)
        elif arg.startswith("-"):
            return None
        elif args.command is None:
            args.command = arg
        else:
            args.names.append(arg)
    if args.command == "path" and len(args.names) == 1:
        args.name = args.names[0]
        return args
    return args if args.command == "status" and args.names else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _fast(argv)
    if args is None:
        command = _command(argv)
        parser = build_parser(command if command in HANDLERS and "-h" not in argv and "--help" not in argv else None)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse already printed usage
            return EXIT_USAGE if exc.code not in (0, None) else 0
    from ..core.env import go_offline, quiet_hub

    environ_at_start = dict(os.environ)  # before our own defaults below: doctor judges the user's environment
    quiet_hub()
    if args.offline:
        go_offline()
    if args.endpoint:
        os.environ["HF_ENDPOINT"] = args.endpoint
    if args.command not in ("path", "status"):  # the two a container calls on every start: nothing to interrupt
        _sigterm_as_interrupt()
    if args.command in ("load", "warm", "verify", "lock", "doctor", "import") and not os.environ.get("LYRICSUB_VERBOSE"):
        _quiet_libraries()
    module, name = HANDLERS[args.command]
    ctx = Context(args, environ_at_start=environ_at_start)
    from .output import Outcome, emit

    try:
        handler = getattr(import_module(f".{module}", __name__), name)
        outcome: Outcome = handler(ctx)
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
