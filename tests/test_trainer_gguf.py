"""GGUF export and quantization of a student, checked against llama.cpp itself.

Tiny random students over the real Qwen2.5-Coder and SmolLM2 vocabularies are exported and
loaded back in llama-cpp-python: llama.cpp must tokenize as the Hugging Face tokenizer does,
predict the same next token as torch (teacher forcing), generate, and carry the chat
template; transformers must read the F16 file back to the same weights; and llama.cpp's
quantizer must turn it into smaller files that still run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from server.errors import PlancodeError
from tests.tiny_student import build_tiny_student, tokenizer_from_gguf
from trainer import gguf_export
from trainer.gguf_export import QUANT_TYPES, quantize, write_gguf
from trainer.gguf_vocab import add_tokenizer_metadata

CODE = '''import re
from collections import Counter


def word_counts(text: str, *, lower: bool = True) -> dict[str, int]:
    """Count words in ``text``; digits like 2024 and 3.14 are words too."""
    words = re.findall(r"[\\w.]+", text.lower() if lower else text)
    return dict(Counter(words).most_common(10))


class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        if not self.items:
            raise IndexError("pop from empty stack")
        return self.items.pop()


if __name__ == "__main__":
    print(word_counts("Héllo wörld — naïve café, 東京 🚀 hello   world\\t123456"))
'''

TOKENIZE_CASES = [
    CODE,
    "def f(x):\n\treturn x ** 2  # square\n\n\n    \n",
    "Unicode: Ünïcödé — 日本語のテキスト, emoji 🤖🚀👍🏽, Русский текст, ١٢٣ arabic digits",
    "numbers 1 12 123 1234 12345 3.14159 0xFF 1e-9 and spaces   between\r\nwindows line",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n",
    "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n<|fim_middle|>",
]

N_CTX = 256


def _llama(path: Path) -> llama_cpp.Llama:
    return llama_cpp.Llama(model_path=str(path), n_ctx=N_CTX, logits_all=True, verbose=False)


def _teacher_ids(tokenizer: Any) -> list[int]:
    """A few hundred positions of code and chat text, at most N_CTX - 8."""
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Write a stack class."},
         {"role": "assistant", "content": "class Stack:\n    pass"}], tokenize=False)
    ids = tokenizer.encode(chat + CODE, add_special_tokens=False)
    return ids[: N_CTX - 8]


def _agreement(model: Any, llm: llama_cpp.Llama, ids: list[int]) -> tuple[float, int]:
    """Teacher-forced top-1 agreement of torch and llama.cpp, and how many distinct tokens
    torch predicts (a degenerate model predicting one token would agree trivially)."""
    with torch.no_grad():
        torch_top = model(torch.tensor([ids])).logits[0].float().argmax(-1).numpy()
    llm.reset()
    llm.eval(ids)
    llama_top = np.asarray(llm.scores[: len(ids)]).argmax(-1)
    return float((torch_top == llama_top).mean()), len(set(torch_top.tolist()))


def _fields(path: Path, prefix: str = "tokenizer.") -> dict[str, tuple[list[int], list[bytes]]]:
    """Raw (types, bytes of each value) of the GGUF keys under ``prefix``."""
    reader = gguf.GGUFReader(path)
    return {k: ([int(t) for t in f.types], [bytes(f.parts[i]) for i in f.data])
            for k, f in reader.fields.items() if k.startswith(prefix)}


def _value(reader: gguf.GGUFReader, key: str) -> Any:
    return reader.fields[key].contents()


# ---- fixtures: each tokenizer is built from its GGUF once per session (~5-15 s each) ----

@pytest.fixture(scope="session")
def qwen_tokenizer(default_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tokenizer_from_gguf(default_model_path, tmp_path_factory.mktemp("qwen-tokenizer"))


@pytest.fixture(scope="session")
def smol_tokenizer(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tokenizer_from_gguf(tiny_model_path, tmp_path_factory.mktemp("smol-tokenizer"))


@pytest.fixture(scope="module")
def qwen_student(qwen_tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("qwen-student"), qwen_tokenizer)


@pytest.fixture(scope="module")
def qwen_model(qwen_student: Path) -> Any:
    return AutoModelForCausalLM.from_pretrained(qwen_student).eval()


@pytest.fixture(scope="module")
def qwen_f16(qwen_student: Path, qwen_model: Any) -> Path:
    """The tiny Qwen2 student exported with a vocabulary built from its HF tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(qwen_student)
    return write_gguf(qwen_model, tokenizer, qwen_student / "student-f16.gguf", name="tiny")


@pytest.fixture(scope="module")
def qwen_llm(qwen_f16: Path) -> llama_cpp.Llama:
    return _llama(qwen_f16)


# ---- Qwen2, vocabulary built from the tokenizer -------------------------------------------

@pytest.mark.parametrize("text", TOKENIZE_CASES)
def test_llama_cpp_tokenizes_like_the_hf_tokenizer(qwen_llm: llama_cpp.Llama,
                                                   qwen_tokenizer: Any, text: str) -> None:
    expected = qwen_tokenizer.encode(text, add_special_tokens=False)
    assert qwen_llm.tokenize(text.encode(), add_bos=False, special=True) == expected


def test_llama_cpp_predicts_what_torch_predicts(qwen_model: Any, qwen_llm: llama_cpp.Llama,
                                                qwen_tokenizer: Any) -> None:
    ids = _teacher_ids(qwen_tokenizer)
    assert len(ids) >= 200
    agreement, distinct = _agreement(qwen_model, qwen_llm, ids)
    print(f"qwen2 top-1 agreement {agreement:.4f} over {len(ids)} positions, "
          f"{distinct} distinct predictions")
    assert agreement >= 0.99
    assert distinct >= len(ids) // 2


def test_exported_model_generates(qwen_llm: llama_cpp.Llama) -> None:
    qwen_llm.reset()
    out = qwen_llm.create_completion("def add(a, b):", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1


def test_metadata_matches_config_and_convert_hf_to_gguf(qwen_f16: Path, qwen_tokenizer: Any,
                                                        default_model_path: Path) -> None:
    reader = gguf.GGUFReader(qwen_f16)
    assert _value(reader, "general.architecture") == "qwen2"
    assert _value(reader, "general.name") == "tiny"
    assert _value(reader, "general.file_type") == gguf.LlamaFileType.MOSTLY_F16
    expected = {"context_length": 4096, "embedding_length": 128, "block_count": 2,
                "feed_forward_length": 256, "attention.head_count": 4,
                "attention.head_count_kv": 2, "rope.freq_base": 1e6}
    for key, value in expected.items():
        assert _value(reader, f"qwen2.{key}") == pytest.approx(value), key
    assert _value(reader, "qwen2.attention.layer_norm_rms_epsilon") == pytest.approx(1e-6)
    assert _value(reader, "tokenizer.chat_template") == qwen_tokenizer.chat_template
    assert _value(reader, "tokenizer.ggml.pre") == "qwen2"
    names = {t.name: t for t in reader.tensors}
    assert "token_embd.weight" in names and "output.weight" not in names  # tied head
    for tensor in reader.tensors:
        want = (gguf.GGMLQuantizationType.F16 if len(tensor.shape) == 2
                else gguf.GGMLQuantizationType.F32)
        assert tensor.tensor_type == want, tensor.name
    assert names["blk.0.attn_q.bias"].tensor_type == gguf.GGMLQuantizationType.F32
    # The built vocabulary is what convert_hf_to_gguf wrote into the source model.
    built, source = _fields(qwen_f16), _fields(default_model_path)
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                "tokenizer.ggml.eos_token_id", "tokenizer.ggml.bos_token_id",
                "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token",
                "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.chat_template"):
        assert built[key] == source[key], key


def test_source_gguf_tokenizer_keys_are_copied_verbatim(qwen_model: Any, qwen_student: Path,
                                                        default_model_path: Path) -> None:
    out = write_gguf(qwen_model, None, qwen_student / "copied.gguf",
                     source_gguf=default_model_path)
    assert _fields(out) == _fields(default_model_path)


def test_source_gguf_with_another_vocabulary_is_refused(qwen_model: Any, qwen_student: Path,
                                                        tiny_model_path: Path) -> None:
    out = qwen_student / "wrong.gguf"
    with pytest.raises(PlancodeError, match="49152 tokens"):
        write_gguf(qwen_model, None, out, source_gguf=tiny_model_path)
    assert not out.exists()


def test_transformers_reads_the_export_back(qwen_f16: Path, qwen_model: Any) -> None:
    back = AutoModelForCausalLM.from_pretrained(qwen_f16.parent, gguf_file=qwen_f16.name)
    original, loaded = qwen_model.state_dict(), back.state_dict()
    assert set(original) == set(loaded)
    for name, tensor in original.items():
        want = tensor.half().float() if tensor.ndim == 2 else tensor.float()
        torch.testing.assert_close(loaded[name].float(), want, rtol=0, atol=0, msg=name)


def test_a_failed_write_leaves_no_file(qwen_model: Any, qwen_tokenizer: Any, qwen_student: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = qwen_student / "crash.gguf"
    out.write_bytes(b"previous good file")

    def crash(self: gguf.GGUFWriter, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", crash)
    with pytest.raises(OSError, match="disk full"):
        write_gguf(qwen_model, qwen_tokenizer, out)
    assert out.read_bytes() == b"previous good file"
    assert not out.with_name(out.name + ".partial").exists()


# ---- Llama (SmolLM2 vocabulary): the q/k permutation ---------------------------------------

def test_llama_export_agrees_and_needs_the_qk_permutation(
        smol_tokenizer: Any, tiny_model_path: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = AutoModelForCausalLM.from_pretrained(
        build_tiny_student(tmp_path / "smol", smol_tokenizer, arch="llama")).eval()
    ids = _teacher_ids(smol_tokenizer)
    out = write_gguf(model, smol_tokenizer, tmp_path / "llama-f16.gguf")
    llm = _llama(out)
    for text in TOKENIZE_CASES:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == \
            smol_tokenizer.encode(text, add_special_tokens=False)
    agreement, distinct = _agreement(model, llm, ids)
    print(f"llama top-1 agreement {agreement:.4f} over {len(ids)} positions, "
          f"{distinct} distinct predictions")
    assert agreement >= 0.99 and distinct >= len(ids) // 2
    built, source = _fields(out), _fields(tiny_model_path)
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id",
                "tokenizer.ggml.eos_token_id", "tokenizer.chat_template"):
        assert built[key] == source[key], key
    del llm
    # Negative control: without the permutation llama.cpp's rotary pairs are wrong.
    monkeypatch.setattr(gguf_export, "_permute", lambda weights, n_head: weights)
    unpermuted = write_gguf(model, None, tmp_path / "unpermuted.gguf",
                            source_gguf=tiny_model_path)
    bad, _ = _agreement(model, _llama(unpermuted), ids)
    print(f"llama top-1 agreement without the q/k permutation {bad:.4f}")
    assert bad < 0.5


# ---- quantization ---------------------------------------------------------------------------

def test_quantize_makes_smaller_files_that_run(qwen_f16: Path, tmp_path: Path) -> None:
    q8 = quantize(qwen_f16, tmp_path / "student-q8_0.gguf", "Q8_0")
    q4 = quantize(qwen_f16, tmp_path / "student-q4_k_m.gguf", "q4_k_m")
    sizes = {p.name: p.stat().st_size for p in (qwen_f16, q8, q4)}
    print("sizes:", sizes)
    assert q4.stat().st_size < q8.stat().st_size < qwen_f16.stat().st_size
    for path, ftype in ((q8, "Q8_0"), (q4, "Q4_K_M")):
        assert _value(gguf.GGUFReader(path), "general.file_type") == QUANT_TYPES[ftype]
        llm = _llama(path)
        out = llm.create_completion("def add(a, b):", max_tokens=4, temperature=0.0)
        assert out["usage"]["completion_tokens"] >= 1
        del llm
    assert not list(tmp_path.glob("*.partial"))


def test_quantize_refuses_bad_kinds_and_missing_files(qwen_f16: Path, tmp_path: Path) -> None:
    with pytest.raises(PlancodeError, match="Q8_0, Q4_K_M, F16"):
        quantize(qwen_f16, tmp_path / "x.gguf", "Q3_XYZ")
    with pytest.raises(PlancodeError, match="does not exist"):
        quantize(tmp_path / "missing.gguf", tmp_path / "x.gguf", "Q8_0")
    (tmp_path / "text.gguf").write_text("not a model")
    with pytest.raises(PlancodeError, match="not a GGUF"):
        quantize(tmp_path / "text.gguf", tmp_path / "x.gguf", "Q8_0")
    assert not (tmp_path / "x.gguf").exists()


# ---- tokenizers the export cannot describe to llama.cpp -------------------------------------

def _word_level_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1, "b": 2}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")


def _unknown_bpe_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    backend = Tokenizer(models.BPE({c: i for i, c in enumerate(sorted(alphabet))}, []))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend)


@pytest.mark.parametrize(("make", "message"), [
    (_word_level_tokenizer, "not a byte-level BPE"),
    (_unknown_bpe_tokenizer, "unrecognised BPE pre-tokenizer"),
])
def test_unknown_tokenizers_are_refused_with_the_fix(make: Any, message: str) -> None:
    tokenizer = make()
    config = type("Config", (), {"vocab_size": len(tokenizer)})()
    writer = gguf.GGUFWriter(path=None, arch="qwen2")
    with pytest.raises(PlancodeError, match=message) as info:
        add_tokenizer_metadata(writer, tokenizer, config)
    assert "source_gguf" in info.value.fix
