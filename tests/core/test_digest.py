"""core/digest.py: the git blob id as git itself spells it, and the order in which a pin and a blob name are judged."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from lyricsub_hub.core.digest import Mismatch, git_blob_id, mismatch, new_hashers, sha256_of

HELLO_GIT = "ce013625030ba8dba906f756967f9e9ca394464a"  # `printf 'hello\n' | git hash-object --stdin`
EMPTY_GIT = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob


def test_git_blob_id_is_gits_own() -> None:
    assert git_blob_id(b"hello\n") == HELLO_GIT
    assert git_blob_id(b"") == EMPTY_GIT


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_blob_id_matches_git_hash_object_on_binary_bytes() -> None:
    data = bytes(range(256)) * 37 + b"\0tail"
    out = subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True).stdout
    assert git_blob_id(data) == out.decode().strip()


def test_streamed_hashers_equal_the_one_shot_digests() -> None:
    data = b"x" * 70_000 + b"end"
    sha, git = new_hashers(len(data), True)
    for i in range(0, len(data), 4096):
        sha.update(data[i:i + 4096])
        git.update(data[i:i + 4096])
    assert sha.hexdigest() == sha256_of(data) == hashlib.sha256(data).hexdigest()
    assert git.hexdigest() == git_blob_id(data)
    assert len(new_hashers(len(data), False)) == 1


def test_mismatch_judges_the_pin_first_then_the_name() -> None:
    data = b"hello\n"
    sha = sha256_of(data)
    other = sha256_of(b"other")
    assert mismatch(sha, HELLO_GIT, pin=sha, name=HELLO_GIT) is None
    assert mismatch(sha, None, pin=sha, name=sha) is None
    assert mismatch(sha, None, pin=sha, name="plain-etag-token") is None  # a token says nothing about the bytes
    assert mismatch(sha, HELLO_GIT, pin=other, name=EMPTY_GIT) == Mismatch("pin", "sha256", sha, other)
    assert mismatch(sha, None, pin=sha, name=other) == Mismatch("name", "sha256", sha, other)
    assert mismatch(sha, HELLO_GIT, pin=sha, name=EMPTY_GIT) == Mismatch("name", "git", HELLO_GIT, EMPTY_GIT)
    assert mismatch(sha, None, pin=None, name=HELLO_GIT) == Mismatch("name", "git", "", HELLO_GIT)  # not computed
