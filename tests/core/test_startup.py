"""The console script's start: dataclasses without inspect, and nothing else changed for the process."""

from __future__ import annotations

import subprocess
import sys


def _child(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_dataclasses_load_without_inspect() -> None:
    out = _child("import sys; from lyricsub_hub.core.startup import import_dataclasses; import_dataclasses(); "
                 "import dataclasses; print('inspect' in sys.modules, 'ast' in sys.modules)")
    assert out == "False False"


def test_a_class_without_docstring_still_gets_its_signature() -> None:
    out = _child("from lyricsub_hub.core.startup import import_dataclasses; import_dataclasses(); "
                 "from dataclasses import dataclass\n"
                 "@dataclass\nclass A:\n    x: int\nprint(A.__doc__)")
    assert out == "A(x: int)"


def test_a_later_import_of_inspect_gets_the_real_module() -> None:
    out = _child("import sys, types; from lyricsub_hub.core.startup import import_dataclasses; import_dataclasses(); "
                 "import inspect; print(type(inspect) is types.ModuleType, inspect.isfunction(print), "
                 "sys.modules['inspect'] is inspect, inspect.__spec__ is not None)")
    assert out == "True False True True"


def test_no_op_when_inspect_is_already_loaded() -> None:
    out = _child("import inspect, sys; from lyricsub_hub.core.startup import import_dataclasses; import_dataclasses(); "
                 "import dataclasses; print(dataclasses.inspect is inspect)")
    assert out == "True"
