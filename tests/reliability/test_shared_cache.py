"""A cache shared by a team, a read-only site cache under one's own, and permission failures that say so (issue 19).

Every case runs the real command as other Unix users: the test (root, as in CI) starts it with another uid, gid,
supplementary groups and umask (subprocess's own setuid/setgid/setgroups/umask; no accounts needed). The team's
folder is set up as an admin would: owned by a group, mode 2775. Members: A (umask 022) and B (umask 002) in the
group, an outsider O (not in it), fresh accounts under umask 002. Skipped when not root or when no interpreter the
other uid can run is found (a pyenv Python under /root is not).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

from lyricsub_hub import ModelDownloader, ModelManager

from .helpers import (
    ROOT,
    add,
    assert_clean_failure,
    payload,
    repo_dir,
    run_cli,
    sha256,
    tree_listing,
    wait_until,
    warm_args,
    write_index,
)

pytestmark = pytest.mark.reliability

TEAM = 4242  # the team's group
_DROP = ("LYRICSUB_STATE_DIR", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME", "XDG_STATE_HOME",
         "LYRICSUB_SITE_CACHE", "PYTHONPATH", "LYRICSUB_MODEL_INDEX")


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    groups: tuple[int, ...]
    umask: int
    home: Path

    @property
    def state(self) -> Path:
        return self.home / ".local" / "state" / "lyricsub-hub"


@lru_cache(maxsize=1)
def _interpreter() -> tuple[str, str] | str:
    """(python, PYTHONPATH) that another uid can run with this checkout and the test environment's packages,
    or why there is none."""
    if os.geteuid() != 0:
        return "needs root to run commands as other users"
    code = os.environ.get("LYRICSUB_CLI_PYTHONPATH") or str(ROOT)
    path = os.pathsep.join([code, sysconfig.get_paths()["purelib"]])
    candidates = [sys.executable, os.path.realpath(sys.executable), f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"]
    for exe in dict.fromkeys(candidates):
        try:
            probe = subprocess.run([exe, "-c", "import lyricsub_hub, huggingface_hub, urllib3"], user=4299, group=4299,
                                   extra_groups=[], env={"PYTHONPATH": path, "PYTHONNOUSERSITE": "1", "HOME": "/"},
                                   cwd="/", capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return exe, path
    return "no Python interpreter here that another uid may run (and import this checkout with)"


def _env(user: User, extra: dict[str, str] | None) -> dict[str, str]:
    found = _interpreter()
    assert not isinstance(found, str)
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env.update(HOME=str(user.home), PYTHONPATH=found[1], PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1")
    env.update(extra or {})
    return env


def _popen_args(user: User) -> dict[str, object]:
    return {"user": user.uid, "group": user.uid, "extra_groups": list(user.groups), "umask": user.umask, "cwd": "/"}


def run_as(user: User, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real command as this user: its uid, its own group, its supplementary groups, its umask, its HOME."""
    found = _interpreter()
    assert not isinstance(found, str)
    return subprocess.run([found[0], "-m", "lyricsub_hub", *args], env=_env(user, env), capture_output=True, text=True,
                          timeout=timeout, **_popen_args(user))  # type: ignore[arg-type]


def spawn_as(user: User, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    found = _interpreter()
    assert not isinstance(found, str)
    return subprocess.Popen([found[0], "-m", "lyricsub_hub", *args], env=_env(user, env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **_popen_args(user))  # type: ignore[arg-type]


@pytest.fixture
def world():
    """A folder under /tmp every test user can traverse (pytest's tmp_path sits in a 0700 folder of root's)."""
    found = _interpreter()
    if isinstance(found, str):
        pytest.skip(found)
    base = Path(tempfile.mkdtemp(prefix="lyricsub-team-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def make_user(world: Path, name: str, uid: int, groups: tuple[int, ...] = (), umask: int = 0o022) -> User:
    home = world / f"home-{name}"
    home.mkdir()
    os.chown(home, uid, uid)
    home.chmod(0o700)
    return User(name, uid, groups, umask, home)


@pytest.fixture
def team(world: Path) -> Path:
    """The admin's setup: `mkdir team; chgrp team team; chmod 2775 team`."""
    folder = world / "team"
    folder.mkdir()
    os.chown(folder, 0, TEAM)
    folder.chmod(0o2775)
    return folder


@pytest.fixture
def repos(hub):
    """team/x at two commits (x1, then x2 sharing config.json), team/y, and team/big (6 MB, for a warm in flight)."""
    config = b'{"dims": 4}\n'
    x1 = add(hub, "whisper:x1", "team/x", {"config.json": config, "model.bin": payload(1, 200_000)})
    x2 = add(hub, "whisper:x2", "team/x", {"config.json": config, "model.bin": payload(2, 200_000)})
    y = add(hub, "whisper:y", "team/y", {"config.json": config, "model.bin": payload(3, 150_000)})
    return {"x1": x1, "x2": x2, "y": y}


@pytest.fixture
def index(world: Path, repos) -> Path:
    return write_index(world / "index.yaml", list(repos.values()))


def cli(hub, index: Path, *args: str) -> list[str]:
    return [*args, "--index", str(index), "--endpoint", hub.endpoint]


def doc(proc: subprocess.CompletedProcess) -> dict:
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def team_problems(root: Path) -> list[str]:
    """What another member could not use: a folder or file of another group, a folder without group rwx or
    setgid, a file without group read/write."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                continue
            mode, rel = stat.S_IMODE(st.st_mode), os.path.relpath(path, root)
            if st.st_gid != TEAM:
                out.append(f"{rel}: group {st.st_gid}")
            elif stat.S_ISDIR(st.st_mode) and (mode & 0o2070) != 0o2070:
                out.append(f"{rel}: folder mode {mode:o}")
            elif stat.S_ISREG(st.st_mode) and (mode & 0o060) != 0o060:
                out.append(f"{rel}: file mode {mode:o}")
    return out


def private_problems(state: Path, uid: int) -> list[str]:
    """Anything in a state folder that is not the user's own 0700 folder or 0600 file."""
    assert state.is_dir(), f"{state} was not created"
    out = []
    for dirpath, dirnames, filenames in os.walk(state):
        for name in [".", *dirnames, *filenames]:
            path = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(path)
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if st.st_uid != uid or stat.S_IMODE(st.st_mode) != want:
                out.append(f"{os.path.relpath(path, state)}: uid {st.st_uid} mode {stat.S_IMODE(st.st_mode):o}")
    return out


# --- members of a team ------------------------------------------------------------------------------------------------

def test_members_with_umask_022_and_002_share_a_setgid_cache(hub, world, team, index, repos) -> None:
    a = make_user(world, "a", 4201, (TEAM,), 0o022)
    b = make_user(world, "b", 4202, (TEAM,), 0o002)
    warm = run_as(a, *cli(hub, index, "warm", "whisper:x1", "--no-load", "--cache-dir", str(team)))
    assert warm.returncode == 0, warm.stderr
    assert team_problems(team) == []  # A's umask 022 did not lock B out of anything
    assert private_problems(a.state, a.uid) == []

    seen = run_as(b, *cli(hub, index, "status", "whisper:x1", "--json", "--cache-dir", str(team)))
    assert seen.returncode == 0, seen.stderr
    row = doc(seen)["models"][0]
    assert row["cache"] == {"kind": "own", "dir": str(team)}
    assert [f["checked"] for f in row["files"]] == ["hashed", "hashed"]  # B's own records vouch, not A's

    # huggingface_hub before PR #3714 (0.36 included) makes lock files 0644: one A left for y's weights
    locks = team / ".locks" / "models--team--y"
    locks.mkdir(parents=True)
    for folder in (locks.parent, locks):
        os.chown(folder, a.uid, TEAM)
        folder.chmod(0o2775)
    stale = locks / f"{sha256(repos['y'].files['model.bin'])}.lock"
    stale.touch(0o644)
    os.chown(stale, a.uid, TEAM)
    stale.chmod(0o644)
    added = run_as(b, *cli(hub, index, "warm", "whisper:x2", "whisper:y", "--no-load", "--cache-dir", str(team)))
    assert added.returncode == 0, added.stderr  # a revision in A's repo (A's blobs folder, A's locks) and a new repo
    stale.chmod(0o664)  # (only so the tree check below judges what the tool made)
    assert private_problems(b.state, b.uid) == []  # umask 002: still 0700 and 0600

    # huggingface_hub before #1141 wrote blobs 0600: B cannot read one of A's, says so, and warm replaces it
    private = repo_dir(team, "team/x") / "blobs" / sha256(repos["x1"].files["model.bin"])
    private.chmod(0o600)
    unreadable = run_as(b, *cli(hub, index, "status", "whisper:x1", "--cache-dir", str(team)))
    assert unreadable.returncode == 1 and "unreadable: Permission denied" in unreadable.stderr, unreadable.stderr
    fixed = run_as(b, *cli(hub, index, "warm", "whisper:x1", "--no-load", "--cache-dir", str(team)))
    assert fixed.returncode == 0, fixed.stderr
    assert os.stat(private).st_uid == b.uid and stat.S_IMODE(os.stat(private).st_mode) == 0o664

    both = run_as(a, *cli(hub, index, "verify", "--deep", "whisper:x1", "whisper:x2", "whisper:y", "--cache-dir", str(team)))
    assert both.returncode == 0, both.stderr
    gone = run_as(a, *cli(hub, index, "rm", "whisper:y", "--yes", "--cache-dir", str(team)))  # B's repo, removed by A
    assert gone.returncode == 0 and "removed whisper:y" in gone.stdout, gone.stderr
    assert not (repo_dir(team, "team/y") / "snapshots").is_dir() or not any((repo_dir(team, "team/y") / "snapshots").iterdir())
    assert team_problems(team) == []
    owners = {os.lstat(p).st_uid for p in team.rglob("*") if not p.is_symlink()}
    assert {a.uid, b.uid} <= owners  # both really wrote into it


def test_gc_by_one_member_during_anothers_warm(hub, world, team, repos) -> None:
    a = make_user(world, "a", 4201, (TEAM,), 0o022)
    b = make_user(world, "b", 4202, (TEAM,), 0o002)
    old = add(hub, "whisper:z", "team/z", {"config.json": b"{}\n", "model.bin": payload(7, 100_000)})
    new = add(hub, "whisper:z", "team/z", {"config.json": b"{}\n", "model.bin": payload(8, 6_000_000)})
    index_old = write_index(world / "old.yaml", [old])
    index_new = write_index(world / "new.yaml", [new])
    first = run_as(a, *cli(hub, index_old, "warm", "whisper:z", "--no-load", "--cache-dir", str(team)))
    assert first.returncode == 0, first.stderr
    hub.throttle(1_500_000)  # about 4 s for the new model: B's gc runs while A's warm is in flight
    try:
        running = spawn_as(a, *cli(hub, index_new, "warm", "whisper:z", "--no-load", "--connections", "1",
                                   "--cache-dir", str(team)))
        blobs = repo_dir(team, "team/z") / "blobs"
        assert wait_until(lambda: any(blobs.glob("*.lyricsub-part")), 30), "A's warm never started writing"
        gc = run_as(b, *cli(hub, index_new, "gc", "--json", "--cache-dir", str(team)))
        assert gc.returncode == 0, gc.stderr
        assert any(blobs.glob("*.lyricsub-part")) or running.poll() == 0  # A's bytes in flight were left alone
        out, err = running.communicate(timeout=60)
    finally:
        hub.throttle(None)
    assert running.returncode == 0, err
    later = run_as(b, *cli(hub, index_new, "gc", "--cache-dir", str(team)))  # now B removes A's stale revision
    assert later.returncode == 0, later.stderr
    assert not (repo_dir(team, "team/z") / "snapshots" / old.commit).exists()
    check = run_as(a, *cli(hub, index_new, "verify", "--deep", "whisper:z", "--cache-dir", str(team)))
    assert check.returncode == 0, check.stderr
    assert team_problems(team) == []


def test_an_outsider_gets_one_line_and_exit_4_then_reads_the_team_cache_as_a_site_cache(hub, world, team, index) -> None:
    a = make_user(world, "a", 4201, (TEAM,), 0o022)
    outsider = make_user(world, "o", 4203, (), 0o022)
    assert run_as(a, *cli(hub, index, "warm", "whisper:x1", "--no-load", "--cache-dir", str(team))).returncode == 0
    before = tree_listing(team)

    read = run_as(outsider, *cli(hub, index, "status", "whisper:x1", "--cache-dir", str(team)))
    assert read.returncode == 0, read.stderr  # reading a team's cache needs no write access
    denied = run_as(outsider, *cli(hub, index, "warm", "whisper:y", "--no-load", "--cache-dir", str(team)))
    line = assert_clean_failure(denied.returncode, denied.stdout, denied.stderr, (4,), "whisper:y",
                                f"cannot write {team / '.locks'}: Permission denied", "group owner", "HF_HUB_CACHE=",
                                f"LYRICSUB_SITE_CACHE={team}")
    assert "Hub" not in line and "download of" not in line
    for args in (["rm", "whisper:x1"], ["clear", "--yes"]):  # huggingface_hub's deletion would log, then say "freed"
        refused = run_as(outsider, *cli(hub, index, *args, "--cache-dir", str(team)))
        assert_clean_failure(refused.returncode, refused.stdout, refused.stderr, (4,), "whisper:x1",
                             "Permission denied", "nothing was removed", "group owner")
    assert tree_listing(team) == before

    own = outsider.home / "hub"
    env = {"HF_HUB_CACHE": str(own), "LYRICSUB_SITE_CACHE": str(team)}
    hub.clear_log()
    warm = run_as(outsider, *cli(hub, index, "warm", "whisper:x1", "whisper:y", "--no-load", "--json"), env=env)
    assert warm.returncode == 0, warm.stderr
    fetched = {m["name"]: (m["bytes_fetched"], m["cache"]) for m in doc(warm)["models"]}
    assert fetched["whisper:x1"] == (0, {"kind": "site", "dir": str(team)})
    assert fetched["whisper:y"][1] == {"kind": "own", "dir": str(own)} and fetched["whisper:y"][0] > 0
    assert not any("team/x" in r.path for r in hub.requests), [r.path for r in hub.requests]  # not fetched again
    path = run_as(outsider, *cli(hub, index, "path", "whisper:x1"), env=env)
    assert path.returncode == 0 and path.stdout.strip().startswith(str(team)), path.stderr
    assert tree_listing(team) == before  # nothing written into the team's folder


# --- a read-only site cache ------------------------------------------------------------------------------------------

def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def site_ro(hub, world, index):
    """A site cache warmed by the admin, then seen through a read-only bind mount (root ignores modes, not that)."""
    source = world / "site"
    warm = run_cli(*warm_args(hub.endpoint, index, "whisper:x1", cache_dir=source))
    assert warm.returncode == 0, warm.stderr
    target = world / "site-ro"
    target.mkdir()
    if _mount("--bind", str(source), str(target)).returncode != 0:
        pytest.skip("bind mounts are not permitted here")
    try:
        if _mount("-o", "remount,ro,bind", str(target)).returncode != 0:
            pytest.skip("cannot remount a bind mount read-only here")
        try:
            (target / ".probe").write_text("x")
        except OSError as exc:
            assert exc.errno == errno.EROFS
        else:
            pytest.skip("the read-only remount did not take effect")
        yield source, target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def test_a_read_only_site_cache_serves_what_it_holds_and_the_rest_goes_to_ones_own(hub, world, index, site_ro) -> None:
    source, ro = site_ro
    user = make_user(world, "c", 4204, (), 0o002)
    env = {"LYRICSUB_SITE_CACHE": os.pathsep.join([str(world / "absent"), str(ro)])}
    before = tree_listing(source)
    own = user.home / ".cache" / "huggingface" / "hub"

    first = run_as(user, *cli(hub, index, "status", "whisper:x1", "--json"), env=env)
    assert first.returncode == 0, first.stderr
    row = doc(first)["models"][0]
    assert row["cache"] == {"kind": "site", "dir": str(ro)} and row["path"].startswith(str(ro))
    assert [f["checked"] for f in row["files"]] == ["hashed", "hashed"]  # not written by us: hashed once
    again = run_as(user, *cli(hub, index, "status", "whisper:x1", "--json"), env=env)
    assert [f["checked"] for f in doc(again)["models"][0]["files"]] == ["record", "record"]  # then a stat per file
    text = run_as(user, *cli(hub, index, "status", "whisper:x1"), env=env)
    assert "(site cache)" in text.stdout

    hub.clear_log()
    warm = run_as(user, *cli(hub, index, "warm", "whisper:x1", "whisper:y", "--no-load", "--json"), env=env)
    assert warm.returncode == 0, warm.stderr
    rows = {m["name"]: m for m in doc(warm)["models"]}
    assert rows["whisper:x1"]["bytes_fetched"] == 0 and rows["whisper:x1"]["cache"]["kind"] == "site"
    assert rows["whisper:y"]["cache"] == {"kind": "own", "dir": str(own)}
    assert not any("team/x" in r.path for r in hub.requests)
    assert not repo_dir(own, "team/x").exists()  # not even a ref in one's own cache for what the site holds

    assert tree_listing(source) == before
    assert private_problems(user.state, user.uid) == []


def test_doctor_says_which_cache_each_model_comes_from(hub, world, index, site_ro, monkeypatch) -> None:
    from lyricsub_hub.doctor import examine

    source, ro = site_ro
    assert run_cli(*warm_args(hub.endpoint, index, "whisper:y", cache_dir=world / "own")).returncode == 0
    monkeypatch.setenv("LYRICSUB_SITE_CACHE", os.pathsep.join([str(world / "absent"), str(ro)]))
    report = examine(index, cache_dir=world / "own", names=["whisper:x1", "whisper:y"], endpoint=hub.endpoint)
    said = {(f.check, f.model): f.message for f in report.findings if f.check in ("model", "site-cache")}
    assert said[("model", "whisper:x1")].endswith(f"from the site cache {ro}")
    assert "site cache" not in said[("model", "whisper:y")]
    sites = [f for f in report.findings if f.check == "site-cache"]
    assert [(f.level, f.details["path"]) for f in sites] == [("warning", str(world / "absent")), ("ok", str(ro))]
    assert "does not exist" in sites[0].message and "read here, never written" in sites[1].message


def test_a_site_cache_with_a_corrupt_file_is_not_used(hub, world, index, tmp_path) -> None:
    site = tmp_path / "site"
    assert run_cli(*warm_args(hub.endpoint, index, "whisper:x1", cache_dir=site)).returncode == 0
    blob = next(p for p in (repo_dir(site, "team/x") / "blobs").iterdir() if p.stat().st_size == 200_000)
    data = bytearray(blob.read_bytes())
    data[5] ^= 1
    blob.write_bytes(bytes(data))
    mgr = ModelManager(index, tmp_path / "own", site_caches=[site], endpoint=hub.endpoint)
    st = mgr.status("whisper:x1")
    assert st.status == "missing" and not st.site  # the site copy failed its pin: one's own cache answers
    result = mgr.downloader().download_model("whisper:x1")
    assert result.success and str(result.local_path).startswith(str(tmp_path / "own"))


# --- a fresh account under umask 002 ----------------------------------------------------------------------------------

def test_a_fresh_account_with_umask_002_runs_every_command(hub, world, repos) -> None:
    user = make_user(world, "fresh", 4205, (), 0o002)
    index = write_index(user.home / "index.yaml", list(repos.values()))
    os.chown(index, user.uid, user.uid)
    bundle = user.home / "x.tar"
    commands = [
        ["list"], ["info", "whisper:x1"], ["lock", "whisper:x1"], ["warm", "whisper:x1", "whisper:y", "--no-load"],
        ["status", "whisper:x1"], ["path", "whisper:x1"], ["verify"], ["verify", "--deep", "whisper:x1"],
        ["doctor", "whisper:x1"], ["export", "whisper:x1", "-o", str(bundle)], ["rm", "whisper:x1", "--yes"],
        ["import", str(bundle)], ["gc", "--dry-run"], ["gc"], ["load", "whisper:x1", "--device", "cpu"],
        ["clear", "--yes"],
    ]
    for args in commands:
        proc = run_as(user, *cli(hub, index, *args))
        # load: these test weights are no whisper model (exit 5), or whisperx is not installed (exit 1, as doctor
        # then); neither is ever a refused folder (2) or a local failure (4)
        allowed = {"load": (5, 1), "doctor": (0, 1)}.get(args[0], (0,))
        assert proc.returncode in allowed, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "can be written by its group" not in proc.stderr, (args, proc.stderr)
    assert private_problems(user.state, user.uid) == []
    cache = user.home / ".cache" / "huggingface" / "hub"
    modes = {stat.S_IMODE(os.lstat(p).st_mode) for p in cache.rglob("*") if p.is_dir() and not p.is_symlink()}
    assert modes == {0o775}  # the cache follows the umask, as huggingface_hub's own folders do


# --- file locks the filesystem cannot take ------------------------------------------------------------------------

def test_a_filesystem_without_flock_is_a_local_error_that_says_what_to_set(hub, index, tmp_path, monkeypatch) -> None:
    import fcntl

    real = fcntl.flock

    def no_locks(fd: int, op: int) -> None:
        if op & fcntl.LOCK_UN:
            return real(fd, op)
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    cache = tmp_path / "nfs"
    mgr = ModelManager(index, cache, endpoint=hub.endpoint)
    result = ModelDownloader(mgr).download_model("whisper:y")
    assert not result.success and result.exit_code == 4 and result.error_code == "no_flock"
    assert f"the filesystem of {cache} cannot take file locks" in result.error
    assert f"HF_HUB_CACHE=<a folder on a local disk> LYRICSUB_SITE_CACHE={cache}" in result.error


# --- the one translation of local OSErrors (outside remote/) --------------------------------------------------------

def test_local_errors_are_translated_to_exit_4_and_nothing_else_is(tmp_path) -> None:
    from lyricsub_hub.errors import AccessDeniedError, DiskSpaceError, LocalStorageError, local_error

    cache, state = tmp_path / "hub", tmp_path / "state"
    ro = local_error(OSError(errno.EROFS, "Read-only file system", str(cache / ".locks" / "x")), model="m:a",
                     cache_dir=cache, state_dir=state)
    assert isinstance(ro, LocalStorageError) and ro.exit_code == 4
    assert "Read-only file system" in ro.message and f"the cache {cache} is read-only here" in ro.message
    assert ro.hint == f"HF_HUB_CACHE=<a folder of your own> LYRICSUB_SITE_CACHE={cache} lyricsub-hub warm m:a"
    own = local_error(PermissionError(errno.EACCES, "Permission denied", str(state / "records")), cache_dir=cache,
                      state_dir=state)
    assert isinstance(own, LocalStorageError) and f"cannot write the state folder {state}" in own.message
    assert own.hint is not None and own.hint.startswith("LYRICSUB_STATE_DIR=")
    full = local_error(OSError(errno.ENOSPC, "No space left on device"), model="m:a", file="model.bin", cache_dir=cache)
    assert isinstance(full, DiskSpaceError) and full.exit_code == 4 and "while writing model.bin" in full.message
    other = local_error(PermissionError(errno.EACCES, "Permission denied", "/etc/index.yaml"), cache_dir=cache)
    assert isinstance(other, LocalStorageError) and other.message == "cannot write /etc/index.yaml: Permission denied"
    assert local_error(ConnectionResetError(errno.ECONNRESET, "reset"), cache_dir=cache) is None  # the network's
    assert local_error(AccessDeniedError("gated", model="m:a"), cache_dir=cache) is None  # the Hub's own refusal


@pytest.mark.torch
def test_load_says_a_model_came_from_the_site_cache(hub, tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("demucs")
    from lyricsub_hub.cli import main
    from lyricsub_hub.testing import tiny_models as tm

    folder = tm.make_demucs(tmp_path / "made")
    model = add(hub, "demucs:htdemucs", "test/site-demucs", {p.name: p.read_bytes() for p in folder.iterdir()})
    index = write_index(tmp_path / "index.yaml", [model])
    site, own = tmp_path / "site", tmp_path / "own"
    assert run_cli(*warm_args(hub.endpoint, index, "demucs:htdemucs", cache_dir=site)).returncode == 0
    before = tree_listing(site)
    monkeypatch.setenv("LYRICSUB_SITE_CACHE", str(site))
    monkeypatch.setenv("HF_HUB_CACHE", str(own))
    capsys.readouterr()
    assert main(["load", "demucs:htdemucs", "--device", "cpu", "--index", str(index)]) == 0  # in-process: torch once
    text = capsys.readouterr()
    assert f"(from the site cache {site})" in text.out, text.err
    assert main(["load", "demucs:htdemucs", "--device", "cpu", "--index", str(index), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["models"][0]
    assert row["cache"] == {"kind": "site", "dir": str(site)} and row["path"].startswith(str(site))
    assert tree_listing(site) == before and not own.exists()


def test_rm_leaves_the_part_file_of_a_download_in_flight(hub, repos, index, tmp_path) -> None:
    from lyricsub_hub.cache.layout import lock_path
    from lyricsub_hub.cache.locks import BlobLock

    from .helpers import held_bytes, plant_part

    cache = tmp_path / "hub"
    data = repos["y"].files["model.bin"]
    plant_part(cache, "team/y", data, 100_000)
    running = BlobLock(lock_path(cache, "team/y", sha256(data)), cache)  # another member's warm, in another process
    assert running.acquire()
    mgr = ModelManager(index, cache)
    try:
        assert mgr.remove_model("whisper:y").absent == ("whisper:y",)
        assert held_bytes(cache, "team/y", sha256(data)) == 100_000  # its bytes stay while it runs
    finally:
        running.release()
    assert mgr.remove_model("whisper:y").removed == ("whisper:y",)
    assert held_bytes(cache, "team/y", sha256(data)) == 0


def test_doctor_judges_how_a_teams_folder_is_set_up(hub, index, tmp_path) -> None:
    from lyricsub_hub.doctor import examine

    if os.geteuid() != 0:
        pytest.skip("needs root to give a folder to another group")
    folder = tmp_path / "team"
    folder.mkdir()
    os.chown(folder, 0, TEAM)

    def team_finding():
        found = [f for f in examine(index, cache_dir=folder, names=["whisper:x1"], endpoint=hub.endpoint).findings
                 if f.check == "team"]
        return (found[0].level, found[0].message, found[0].hint) if found else None

    folder.chmod(0o755)
    assert team_finding() is None  # a private cache: nothing to say
    folder.chmod(0o775)  # group-writable, no setgid, and this process's umask is 022
    level, message, hint = team_finding()
    assert level == "warning" and "not setgid" in message and hint == f"chmod g+s {folder} (its owner), or umask 002"
    folder.chmod(0o2775)
    assert run_cli(*warm_args(hub.endpoint, index, "whisper:x1", cache_dir=folder)).returncode == 0
    level, message, _ = team_finding()
    assert level == "ok" and f"shared by group {TEAM}" in message
    old = folder / "models--team--old"  # made before the folder was shared
    old.mkdir()
    old.chmod(0o755)
    level, message, hint = team_finding()
    assert level == "warning" and f"1 folder(s) in the team's cache {folder} are not group-writable" in message
    assert str(old) in message and "chmod -R g+rwX" in hint
