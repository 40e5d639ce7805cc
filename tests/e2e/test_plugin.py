"""The pytest plugin apps use: their own test, in a fresh pytest, gets a warmed cache of tiny real models."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.torch, pytest.mark.slow]

APP_TEST = '''
from lyricsub_hub import go_offline


def test_my_pipeline_runs_offline(lyricsub_models):
    go_offline()
    bag = lyricsub_models.load("demucs:htdemucs", device="cpu").model
    assert type(bag).__name__ == "BagOfModels"
    report = lyricsub_models.smoke_test("whisper:large-v3", device="cpu")
    assert report.device == "cpu" and report.summary


def test_the_loopback_hub_is_there(lyricsub_hub_server):
    assert lyricsub_hub_server.endpoint.startswith("http://127.0.0.1:")
'''


def test_an_apps_own_tests_get_a_loopback_hub_and_tiny_models(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=APP_TEST)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider",  # the plugin comes by its entry point
                                           timeout=600)
    result.assert_outcomes(passed=2)
