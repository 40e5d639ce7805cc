"""The parsed copy of the index in the state folder: used while the index's bytes are the same, never otherwise."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lyricsub_hub.index import load_index

INDEX = "version: 1\nmodels:\n  demucs:x:\n    repo: a/b\n    revision: " + "c" * 40 + "\n"


def test_a_second_load_reads_the_copy_and_imports_no_yaml(tmp_path: Path) -> None:
    path = tmp_path / "i.yaml"
    path.write_text(INDEX)
    state = tmp_path / "state"
    first = load_index(path, state_dir=state)
    assert list((state / "index").glob("*.json"))
    import subprocess

    code = ("import sys; from pathlib import Path; from lyricsub_hub.index import load_index; "
            f"i = load_index(Path({str(path)!r}), state_dir=Path({str(state)!r})); "
            "print(list(i.models), 'yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"{list(first.models)} False"


def test_an_edited_index_is_parsed_again_whatever_its_mtime(tmp_path: Path) -> None:
    path = tmp_path / "i.yaml"
    path.write_text(INDEX)
    state = tmp_path / "state"
    load_index(path, state_dir=state)
    st = path.stat()
    path.write_text(INDEX.replace("a/b", "a/c"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and time: only the bytes differ
    assert load_index(path, state_dir=state).models["demucs:x"].repo == "a/c"


def test_a_copy_in_a_folder_others_may_write_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "i.yaml"
    path.write_text(INDEX)
    state = tmp_path / "state"
    load_index(path, state_dir=state)
    copy = next((state / "index").glob("*.json"))
    copy.write_text(copy.read_text().replace("a/b", "evil/repo"))  # someone swapped the pins in the copy
    os.chmod(state / "index", 0o777)
    assert load_index(path, state_dir=state).models["demucs:x"].repo == "a/b"
