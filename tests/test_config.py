"""Settings: defaults, camelCase keys, and errors that name the key and the fix."""

from __future__ import annotations

import pytest

from plancode.config import Settings, describe
from plancode.errors import PlancodeError


def test_defaults_are_valid() -> None:
    s = Settings()
    assert s.model == "qwen2.5-coder-0.5b" and s.n_gpu_layers == 0 and s.candidates == 4


def test_camel_case_and_string_values_are_accepted() -> None:
    s = Settings.from_mapping({"nGpuLayers": -1, "planComments": "off", "testTimeout": "2.5"})
    assert s.n_gpu_layers == -1 and s.plan_comments is False and s.test_timeout == 2.5


@pytest.mark.parametrize(
    ("values", "key", "why"),
    [
        ({"candidates": 0}, "candidates", "between 1 and 32"),
        ({"nThreads": "many"}, "nThreads", "not a valid int"),
        ({"backend": "gpt"}, "backend", "one of llama, openai"),
        ({"isolation": "docker"}, "isolation", "one of auto, bwrap, landlock"),
        ({"planComments": 3}, "planComments", "not a valid bool"),
        ({"remote_url": "ftp://x"}, "remote_url", "http"),
        ({"n_ctx": 1.5}, "n_ctx", "not a valid int"),
    ],
)
def test_bad_values_name_the_key(values: dict, key: str, why: str) -> None:
    with pytest.raises(PlancodeError) as err:
        Settings.from_mapping(values)
    assert repr(key) in err.value.message and why in err.value.message
    assert err.value.fix


def test_unknown_key_lists_valid_ones() -> None:
    with pytest.raises(PlancodeError, match="unknown setting 'modle'") as err:
        Settings.from_mapping({"modle": "x"})
    assert "model" in err.value.fix


def test_openai_backend_needs_a_url() -> None:
    with pytest.raises(PlancodeError, match="remote_url"):
        Settings.from_mapping({"backend": "openai"})
    s = Settings.from_mapping({"backend": "openai", "remoteUrl": "http://127.0.0.1:8080/v1"})
    assert s.remote_url.endswith("/v1")


def test_base_is_kept_for_unchanged_keys() -> None:
    base = Settings.from_mapping({"candidates": 8})
    assert Settings.from_mapping({"seed": 3}, base).candidates == 8


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANCODE_N_THREADS", "2")
    assert Settings.from_env().n_threads == 2


def test_every_setting_is_documented() -> None:
    table = describe()
    for key in Settings.setting_names():
        assert key in table
