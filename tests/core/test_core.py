"""The foundation: validators for every value from outside, redaction of every message, and file operations
that stay safe in a folder other local users can write to."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lyricsub_hub.core.checks import acceptable_etag, clean_etag, is_commit, is_repo_id, is_sha256, safe_file_name, safe_ref_name
from lyricsub_hub.core.fs import UnsafePathError, atomic_write, open_own, private_problem, unlink_inside
from lyricsub_hub.core.text import clean_url, human_size, parse_size, printable, redact

SHA = "a" * 64
COMMIT = "b" * 40


@pytest.mark.parametrize("value", [SHA + "\n", SHA.upper(), SHA[:-1], SHA + "0", " " + SHA, 64, None])
def test_a_sha256_is_exactly_64_lower_hex(value) -> None:
    assert not is_sha256(value)


def test_good_values_pass() -> None:
    assert is_sha256(SHA) and is_commit(COMMIT) and is_repo_id("org/name-1.0")


@pytest.mark.parametrize("name", ["../x", "a/../../b", "/etc/passwd", "a\\b", "C:x", "a//b", "./a", "a/", "",
                                  "x\x1b[31m", "a\nb", "x" * 256])
def test_unsafe_file_names(name: str) -> None:
    assert not safe_file_name(name)


@pytest.mark.parametrize("name", ["model.bin", "sub/vocab.json", "ü/ñ.bin", "a b.pt"])
def test_safe_file_names(name: str) -> None:
    assert safe_file_name(name)


@pytest.mark.parametrize(("name", "ok"), [("main", True), ("release/v1", True), ("../main", False), ("main.lock", False),
                                          ("a..b", False), (".hidden", False), ("x/", False), ("", False)])
def test_branch_names_follow_git(name: str, ok: bool) -> None:
    assert safe_ref_name(name) is ok


def test_etags_a_mirror_invents_are_plain_tokens_and_paths_are_not() -> None:
    assert clean_etag('W/"abc-10"') == "abc-10"
    assert acceptable_etag("777d5d07c4baef9461b856ffa52d5711-10")  # olah offline
    assert not acceptable_etag("../../target") and not acceptable_etag("a b") and not acceptable_etag("x" * 200)


def test_redaction_removes_tokens_bearers_passwords_and_signed_queries() -> None:
    text = ("hf_AbCdEf123456 Bearer sk-secret http://alice:pw@mirror:8080/x?Signature=abc&Expires=1 "
            "custom-token-9 https://cdn.example/file?X-Amz-Signature=zzz")
    shown = redact(text, "custom-token-9")
    for secret in ("AbCdEf123456", "sk-secret", "alice", "pw@", "Signature=abc", "custom-token-9", "zzz"):
        assert secret not in shown
    assert "http://mirror:8080/x?…" in shown
    assert clean_url("http://h/p") == "http://h/p"


def test_control_characters_are_shown_as_escapes() -> None:
    assert printable("a\x1b[31mb\nc\x07") == "a\\x1b[31mb\\x0ac\\x07"


@pytest.mark.parametrize(("text", "size"), [("20M", 20 * 10**6), ("20MB", 20 * 10**6), ("20MiB", 20 * 2**20),
                                            ("1.5G", 15 * 10**8), ("512", 512), ("2TiB", 2 * 2**40)])
def test_sizes_read_decimal_and_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_human_sizes_are_decimal() -> None:
    assert [human_size(n) for n in (999, 1000, 3_087_284_237, 900 * 10**12)] == ["999 B", "1.0 KB", "3.1 GB", "900.0 TB"]


def test_atomic_write_replaces_a_planted_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("private")
    target = tmp_path / "ref"
    target.symlink_to(victim)
    atomic_write(target, b"new")
    assert victim.read_text() == "private"
    assert not target.is_symlink() and target.read_bytes() == b"new"


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_open_own_refuses_links(tmp_path: Path, how: str) -> None:
    victim = tmp_path / "victim"
    victim.write_text("private")
    planted = tmp_path / "part"
    if how == "symlink":
        planted.symlink_to(victim)
    else:
        os.link(victim, planted)
    with pytest.raises(OSError):  # ELOOP for a symlink, UnsafePathError for a second name of someone's file
        os.close(open_own(planted, os.O_RDWR))
    assert victim.read_text() == "private"


def test_open_own_accepts_a_plain_file_of_ours(tmp_path: Path) -> None:
    mine = tmp_path / "part"
    mine.write_bytes(b"x")
    os.close(open_own(mine, os.O_RDWR))


def test_unlink_inside_never_leaves_its_folder(tmp_path: Path) -> None:
    base = tmp_path / "repo"
    base.mkdir()
    outside = tmp_path / "outside"
    outside.write_text("keep")
    assert not unlink_inside(outside, base)
    assert outside.exists()
    link = base / "link"
    link.symlink_to(outside)
    assert unlink_inside(link, base)  # the link itself goes, its target stays
    assert outside.read_text() == "keep"


def test_a_folder_others_may_write_cannot_vouch(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    assert private_problem(folder) is None
    os.chmod(folder, 0o770)
    assert "group" in (private_problem(folder) or "")
    os.chmod(folder, 0o707)
    assert "others" in (private_problem(folder) or "")
    assert private_problem(tmp_path / "not-yet") is None  # we create it 0700
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o707
    assert isinstance(UnsafePathError(1, "x"), OSError)


def test_a_fix_is_data_and_reads_as_its_line() -> None:
    from lyricsub_hub.errors import Fix, Hint, ModelNotAvailableError

    fix = Hint.offline_warm("whisper:tiny")
    assert (fix.command, fix.args, dict(fix.env)) == ("warm", ("whisper:tiny",), {"HF_HUB_OFFLINE": "0"})
    assert fix == "HF_HUB_OFFLINE=0 lyricsub-hub warm whisper:tiny  (on a machine with network)"
    err = ModelNotAvailableError("not in the cache", model="whisper:tiny", status="missing", hint=Hint.warm("whisper:tiny"))
    assert err.fix == Fix("warm", "whisper:tiny") and str(err) == "whisper:tiny: not in the cache (run: lyricsub-hub warm whisper:tiny)"
    assert ModelNotAvailableError("x", model="m", status="missing", hint="words only").fix is None
    again = err.with_hint(Fix("lock", "whisper:tiny"))
    assert (again.fix.command, again.hint, type(again), err.fix.command) == ("lock", "lyricsub-hub lock whisper:tiny",
                                                                             ModelNotAvailableError, "warm")


def test_a_fix_keeps_the_words_around_its_command_in_the_line_not_in_the_data() -> None:
    from lyricsub_hub.errors import Fix

    fix = Fix("warm", "whisper:tiny", before="free space, then ", after=" (on this machine)")
    assert fix == "free space, then lyricsub-hub warm whisper:tiny (on this machine)"
    assert fix.as_json() == {"command": "warm", "args": ["whisper:tiny"], "env": {}, "note": None}


def test_new_temp_is_private_fresh_and_tries_another_name_on_a_clash(tmp_path: Path, mocker) -> None:
    """mkstemp's contract without importing tempfile: 0600, never an existing name, never a planted link."""
    from lyricsub_hub.core.fs import new_temp

    names = iter([b"\x01" * 6, b"\x01" * 6, b"\x02" * 6])
    mocker.patch("lyricsub_hub.core.fs.os.urandom", side_effect=lambda n: next(names))
    fd, first = new_temp(tmp_path, ".x-")
    os.close(fd)
    first.unlink()
    first.symlink_to(tmp_path / "victim")  # a link planted at the next name it would pick
    fd, second = new_temp(tmp_path, ".x-")
    os.close(fd)
    assert second != first and second.name == ".x-020202020202.tmp"
    assert (second.stat().st_mode & 0o777) == 0o600
    assert not (tmp_path / "victim").exists()
