"""A catalog model that is a base GGUF plus a shipped LoRA adapter (``plancode-student-0.5b``'s
mechanism), end to end through the real store, factory and engine.

The real student adapter is produced by the long distillation run; until it ships, the same
mechanism is exercised with a tiny adapter for SmolLM2 (the fast test model) written by the
trainer's own exporter: the store copies it from the "shipped" folder into the model store,
checks its pinned sha256, re-verifies it, repairs a corrupted copy, and the engine applies it
over the untouched base with llama.cpp — and generates what the merged model generates.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("safetensors")

from plancode.cli import main as plancode  # noqa: E402
from plancode.config import Settings  # noqa: E402
from plancode.engine.factory import load_engine  # noqa: E402
from plancode.engine.types import SamplingParams  # noqa: E402
from plancode.errors import PlancodeError  # noqa: E402
from plancode.models.catalog import CATALOG, CatalogEntry, ShippedAdapter  # noqa: E402
from plancode.models.store import ModelStore  # noqa: E402
from plancode.trainer.gguf_adapter import export_adapter, merge_adapter  # noqa: E402

NAME = "smollm2-student"
PROMPT = [{"role": "user", "content": "Write a Python function that reverses a string."}]


def _tiny_peft_adapter(folder: Path, layers: int = 30, hidden: int = 576, ffn: int = 1536,
                       r: int = 4) -> Path:
    """A peft-format LoRA adapter for SmolLM2-135M (o_proj and down_proj of every layer),
    strong enough to change its greedy text."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    tensors = {}
    for i in range(layers):
        for module, d_in in (("self_attn.o_proj", hidden), ("mlp.down_proj", ffn)):
            key = f"base_model.model.model.layers.{i}.{module}"
            tensors[f"{key}.lora_A.weight"] = rng.normal(0, 0.08, (r, d_in)).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = rng.normal(0, 0.08, (hidden, r)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": r, "lora_alpha": 2 * r,
         "target_modules": ["o_proj", "down_proj"]}))
    return folder


@pytest.fixture(scope="module")
def shipped(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("shipped")
    peft_dir = _tiny_peft_adapter(work / "peft")
    adapter = export_adapter(peft_dir, tiny_model_path, work / "adapters" / "tiny.lora.gguf")
    data = adapter.read_bytes()
    base = CATALOG["smollm2-135m"]
    entry = CatalogEntry(NAME, "SmolLM2 + tiny adapter", base.filename, base.parts, base.size,
                         base.sha256, ShippedAdapter(adapter.name, len(data),
                                                     hashlib.sha256(data).hexdigest()))
    return {"entry": entry, "shipped_dir": adapter.parent, "adapter": adapter,
            "base": tiny_model_path, "work": work}


@pytest.fixture
def store(shipped: dict, tmp_path: Path) -> ModelStore:
    """A fresh store whose base file is the cached SmolLM2 (hard-linked: no download)."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    target = home / "models" / shipped["entry"].filename
    try:
        os.link(shipped["base"], target)
    except OSError:
        target.write_bytes(shipped["base"].read_bytes())
    return ModelStore(home=home, progress=False, catalog={NAME: shipped["entry"]},
                      shipped_dir=shipped["shipped_dir"])


def test_fetch_installs_and_verifies_the_shipped_adapter(store: ModelStore) -> None:
    path = store.fetch(NAME)
    adapter = store.adapter(NAME, fetch=False)
    assert adapter == store.home / "models" / "adapters" / "tiny.lora.gguf"
    assert adapter.is_file() and path.name == CATALOG["smollm2-135m"].filename
    assert store.verify(NAME).ok
    assert store.path(NAME) == path
    assert [m.cached for m in store.list()] == [True]


def test_a_corrupted_adapter_is_detected_and_repaired(store: ModelStore) -> None:
    store.fetch(NAME)
    adapter = store.adapter(NAME)
    raw = bytearray(adapter.read_bytes())
    raw[-10] ^= 0xFF
    adapter.write_bytes(bytes(raw))
    result = store.verify(NAME)
    assert not result.ok and result.path == adapter and "MISMATCH" in result.line()
    with pytest.raises(PlancodeError):
        store.path(NAME)
    store.fetch(NAME)
    assert store.verify(NAME).ok


def test_a_shipped_file_that_does_not_match_its_pin_is_never_installed(
        shipped: dict, store: ModelStore) -> None:
    entry = shipped["entry"]
    wrong = CatalogEntry(NAME, "", entry.filename, entry.parts, entry.size, entry.sha256,
                         ShippedAdapter(entry.adapter.filename, entry.adapter.size, "0" * 64))
    store.catalog = {NAME: wrong}
    with pytest.raises(PlancodeError) as err:
        store.fetch(NAME)
    assert "does not match its pin" in err.value.message and "reinstall" in err.value.fix
    assert not (store.adapters_dir / entry.adapter.filename).exists()


def _top1(path: Path, texts: list[str], lora: Path | None = None) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False,
                lora_path=str(lora) if lora else None)
    out = []
    try:
        for text in texts:
            ids = llm.tokenize(text.encode())
            llm.reset()
            llm.eval(ids)
            out.append(np.asarray(llm.scores[: len(ids)]).argmax(-1))
    finally:
        llm.close()
    return np.concatenate(out)


def test_the_engine_applies_the_adapter_like_the_merged_model(shipped: dict,
                                                              store: ModelStore) -> None:
    params = SamplingParams(max_tokens=24, temperature=0.0)
    student = load_engine(Settings(model=NAME, n_ctx=512), store)
    assert student.lora_path == store.adapter(NAME)
    with_adapter = student.chat(PROMPT, params)
    base = load_engine(Settings(model=str(shipped["base"]), n_ctx=512), store)
    assert base.lora_path is None
    plain = base.chat(PROMPT, params)
    # the engine applies the adapter: the same greedy text may come out, never the same
    # token probabilities
    assert with_adapter.text != plain.text or not np.allclose(
        with_adapter.logprobs, plain.logprobs, atol=1e-3), "the engine must apply the adapter"
    # teacher-forced top-1: the base + adapter is the merged model (f16 of the Q4_1 base + BA)
    merged = merge_adapter(shipped["base"], shipped["adapter"], shipped["work"] / "merged.gguf")
    texts = ["def reverse(s):\n    return s[::-1]\n",
             "The quick brown fox jumps over the lazy dog. Then it sleeps."]
    applied = _top1(shipped["base"], texts, lora=store.adapter(NAME))
    # 96.3% on an AVX2-only CPU, where the tiny student's near-ties fall differently
    assert (applied == _top1(merged, texts)).mean() >= 0.95
    assert (applied == _top1(shipped["base"], texts)).mean() < 0.9  # and it matters


def test_the_real_student_is_catalogued_and_explains_until_released(capsys) -> None:
    entry = CATALOG["plancode-student-0.5b"]
    assert entry.filename == CATALOG["qwen2.5-coder-0.5b"].filename  # the same base file
    assert entry.adapter is not None
    if entry.adapter.released:  # once shipped, the file is in the package and matches
        store = ModelStore(progress=False)
        assert (store.shipped_dir / entry.adapter.filename).stat().st_size == entry.adapter.size
        return
    assert plancode(["model", "fetch", "plancode-student-0.5b"]) == 2
    err = capsys.readouterr().err
    assert "not released" in err and "qwen2.5-coder-0.5b" in err
