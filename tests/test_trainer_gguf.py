"""GGUF export and quantization of a student, checked against llama.cpp itself.

Tiny random students over the real Qwen2.5-Coder and SmolLM2 vocabularies are exported and
loaded back in llama-cpp-python: llama.cpp must tokenize as the Hugging Face tokenizer does,
predict the same next token as torch (teacher forcing), generate, and carry the chat
template; transformers must read the F16 file back to the same weights; and llama.cpp's
quantizer must turn it into smaller files that still run.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from plancode.errors import PlancodeError
from plancode.trainer import gguf_export
from plancode.trainer.gguf_export import QUANT_TYPES, quantize, write_gguf
from plancode.trainer.gguf_vocab import add_tokenizer_metadata
from tests.tiny_student import build_tiny_student, tokenizer_from_gguf

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


# Byte sizes of GGUF scalar value types (gguf.GGUFValueType: 0-7 and 10-12).
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def _raw_metadata(path: Path, prefix: str = "tokenizer.") -> dict[str, bytes]:
    """Each metadata value under ``prefix`` as its raw encoded bytes (type tag included).

    An independent walk of the GGUF key/value section: comparing raw bytes is the literal
    meaning of "copied verbatim", and gguf.GGUFReader takes ~10 s per file on a 150k-token
    vocabulary where this takes a fraction of a second."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        magic, version, _, n_kv = struct.unpack_from("<4sIQQ", mm, 0)
        assert magic == b"GGUF" and version == 3
        pos = 24

        def skip(vtype: int) -> None:
            nonlocal pos
            if vtype in _SCALAR_SIZES:
                pos += _SCALAR_SIZES[vtype]
            elif vtype == 8:  # string
                pos += 8 + struct.unpack_from("<Q", mm, pos)[0]
            elif vtype == 9:  # array: item type, count, items
                item, count = struct.unpack_from("<IQ", mm, pos)
                pos += 12
                if item in _SCALAR_SIZES:
                    pos += count * _SCALAR_SIZES[item]
                else:
                    for _ in range(count):
                        skip(item)
            else:
                raise AssertionError(f"unknown GGUF value type {vtype}")

        out: dict[str, bytes] = {}
        for _ in range(n_kv):
            (length,) = struct.unpack_from("<Q", mm, pos)
            key = mm[pos + 8: pos + 8 + length].decode()
            pos += 8 + length
            start = pos
            pos += 4
            skip(struct.unpack_from("<I", mm, start)[0])
            if key.startswith(prefix):
                out[key] = mm[start:pos]
        return out


# ---- fixtures: qwen_tokenizer and tiny_qwen_student come from conftest (built once) -------

@pytest.fixture(scope="session")
def smol_tokenizer(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tokenizer_from_gguf(tiny_model_path, tmp_path_factory.mktemp("smol-tokenizer"))


@pytest.fixture(scope="module")
def qwen_model(tiny_qwen_student: Path) -> Any:
    return AutoModelForCausalLM.from_pretrained(tiny_qwen_student).eval()


@pytest.fixture(scope="module")
def qwen_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this module writes its Qwen2 GGUFs (the student directory is shared)."""
    return tmp_path_factory.mktemp("qwen-gguf")


@pytest.fixture(scope="module")
def qwen_f16(tiny_qwen_student: Path, qwen_model: Any, qwen_out: Path) -> Path:
    """The tiny Qwen2 student exported with a vocabulary built from its HF tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_student)
    return write_gguf(qwen_model, tokenizer, qwen_out / "student-f16.gguf", name="tiny")


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
    assert distinct >= len(ids) // 10


def test_exported_model_generates(qwen_llm: llama_cpp.Llama) -> None:
    qwen_llm.reset()
    out = qwen_llm.create_completion("def add(a, b):", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1


def test_metadata_matches_the_config_and_convert_hf_to_gguf(
        qwen_llm: llama_cpp.Llama, qwen_f16: Path, qwen_tokenizer: Any,
        default_model_path: Path) -> None:
    meta = qwen_llm.metadata  # as llama.cpp read it
    assert meta["general.architecture"] == "qwen2" and meta["general.name"] == "tiny"
    assert int(meta["general.file_type"]) == gguf.LlamaFileType.MOSTLY_F16
    expected = {"context_length": 4096, "embedding_length": 256, "block_count": 2,
                "feed_forward_length": 512, "attention.head_count": 4,
                "attention.head_count_kv": 2, "rope.freq_base": 1e6,
                "attention.layer_norm_rms_epsilon": 1e-6}
    for key, value in expected.items():
        assert float(meta[f"qwen2.{key}"]) == pytest.approx(value), key
    assert meta["tokenizer.chat_template"] == qwen_tokenizer.chat_template
    # The vocabulary built from the tokenizer is, byte for byte, what convert_hf_to_gguf
    # wrote into the model the tokenizer came from.
    built, source = _raw_metadata(qwen_f16), _raw_metadata(default_model_path)
    assert set(built) == set(source)
    for key in source:
        assert built[key] == source[key], key


def test_source_gguf_tokenizer_keys_are_copied_verbatim(qwen_model: Any, qwen_out: Path,
                                                        default_model_path: Path) -> None:
    out = write_gguf(qwen_model, None, qwen_out / "copied.gguf",
                     source_gguf=default_model_path)
    assert _raw_metadata(out) == _raw_metadata(default_model_path)
    llm = _llama(out)
    assert llm.tokenize(b"<|im_start|>user", add_bos=False, special=True) == [151644, 872]
    assert llm.create_completion("x =", max_tokens=2)["usage"]["completion_tokens"] >= 1


def test_a_source_gguf_with_another_vocabulary_is_refused(qwen_model: Any,
                                                          tmp_path: Path) -> None:
    other = tmp_path / "other-vocab.gguf"
    writer = gguf.GGUFWriter(path=None, arch="qwen2")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{i}" for i in range(10)])
    writer.write_header_to_file(path=other)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    out = tmp_path / "wrong.gguf"
    with pytest.raises(PlancodeError, match="has 10 tokens") as info:
        write_gguf(qwen_model, None, out, source_gguf=other)
    assert "GGUF" in info.value.fix
    with pytest.raises(PlancodeError, match="cannot read tokenizer metadata"):
        write_gguf(qwen_model, None, out, source_gguf=tmp_path / "missing.gguf")
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


# ---- Llama (SmolLM2 vocabulary): the q/k permutation ---------------------------------------

@pytest.fixture(scope="module")
def llama_model(smol_tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    student = build_tiny_student(tmp_path_factory.mktemp("llama-student"), smol_tokenizer,
                                 arch="llama")
    return AutoModelForCausalLM.from_pretrained(student).eval()


@pytest.fixture(scope="module")
def llama_f16(llama_model: Any, smol_tokenizer: Any,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gguf(llama_model, smol_tokenizer,
                      tmp_path_factory.mktemp("llama-gguf") / "llama-f16.gguf")


def test_llama_vocabulary_matches_convert_hf_to_gguf(llama_f16: Path, smol_tokenizer: Any,
                                                     tiny_model_path: Path) -> None:
    built, converted = _raw_metadata(llama_f16), _raw_metadata(tiny_model_path)
    # convert_hf_to_gguf also wrote add_space_prefix (from a tokenizer_config entry that
    # transformers' GGUF tokenizer does not keep); byte-level BPE does not read it.
    assert set(converted) - set(built) == {"tokenizer.ggml.add_space_prefix"}
    for key in built:
        assert built[key] == converted[key], key
    llm = llama_cpp.Llama(model_path=str(llama_f16), vocab_only=True, verbose=False)
    source = llama_cpp.Llama(model_path=str(tiny_model_path), vocab_only=True, verbose=False)
    for text in TOKENIZE_CASES:
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        assert ids == source.tokenize(text.encode(), add_bos=False, special=True)
        if "\u0661" not in text:  # transformers' GGUF tokenizer lacks SmolLM's digit split
            assert ids == smol_tokenizer.encode(text, add_special_tokens=False)


def test_llama_export_agrees_and_needs_the_qk_permutation(
        llama_model: Any, llama_f16: Path, smol_tokenizer: Any, tiny_model_path: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _teacher_ids(smol_tokenizer)
    agreement, distinct = _agreement(llama_model, _llama(llama_f16), ids)
    print(f"llama top-1 agreement {agreement:.4f} over {len(ids)} positions, "
          f"{distinct} distinct predictions")
    assert agreement >= 0.99 and distinct >= len(ids) // 10
    # Negative control: without the permutation llama.cpp rotates the wrong pairs of q/k
    # features (written through the copied-vocabulary path this time).
    monkeypatch.setattr(gguf_export, "_permute", lambda weights, n_head: weights)
    unpermuted = write_gguf(llama_model, None, tmp_path / "unpermuted.gguf",
                            source_gguf=tiny_model_path)
    bad, _ = _agreement(llama_model, _llama(unpermuted), ids)
    print(f"llama top-1 agreement without the q/k permutation {bad:.4f}")
    assert bad < 0.9


def test_transformers_reads_the_export_back(llama_f16: Path, llama_model: Any) -> None:
    """transformers un-permutes llama q/k when it loads a GGUF, so this also proves the
    permutation is exactly the inverse of its own. Matrices come back as their fp16 rounding,
    norms exactly (F32), and the absent output.weight reads as tied embeddings. (The llama
    export is used because transformers parses a GGUF's vocabulary twice, ~10 s each for
    Qwen's 152k tokens.)"""
    back = AutoModelForCausalLM.from_pretrained(llama_f16.parent, gguf_file=llama_f16.name)
    assert back.config.tie_word_embeddings
    original, loaded = llama_model.state_dict(), back.state_dict()
    assert set(original) == set(loaded)
    for name, tensor in original.items():
        want = tensor.half().float() if tensor.ndim == 2 else tensor
        torch.testing.assert_close(loaded[name].float(), want, rtol=0, atol=0, msg=name)


def test_a_failed_write_leaves_no_file(llama_model: Any, smol_tokenizer: Any, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "crash.gguf"
    out.write_bytes(b"previous good file")

    def crash(self: gguf.GGUFWriter, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", crash)
    with pytest.raises(OSError, match="disk full"):
        write_gguf(llama_model, smol_tokenizer, out)
    assert out.read_bytes() == b"previous good file"
    assert not out.with_name(out.name + ".partial").exists()


# ---- quantization ---------------------------------------------------------------------------

def test_quantize_makes_smaller_files_that_run(qwen_f16: Path, tmp_path: Path) -> None:
    q8 = quantize(qwen_f16, tmp_path / "student-q8_0.gguf", "Q8_0")
    q4 = quantize(qwen_f16, tmp_path / "student-q4_k_m.gguf", "q4_k_m")
    print("sizes:", {p.name: p.stat().st_size for p in (qwen_f16, q8, q4)})
    assert q4.stat().st_size < q8.stat().st_size < qwen_f16.stat().st_size
    for path, kind in ((q8, "Q8_0"), (q4, "Q4_K_M")):
        llm = _llama(path)
        assert int(llm.metadata["general.file_type"]) == QUANT_TYPES[kind]
        out = llm.create_completion("def add(a, b):", max_tokens=4, temperature=0.0)
        assert out["usage"]["completion_tokens"] >= 1
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


# ---- metadata the export cannot or can describe ---------------------------------------------

@pytest.mark.parametrize(("rope", "expected"), [
    ({"rope_type": "default"}, {}),
    ({"rope_type": "linear", "factor": 4.0}, {"type": "linear", "factor": 4.0}),
    ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
     {"type": "yarn", "factor": 4.0, "original_context_length": 32768}),
])
def test_rope_scaling_is_written(rope: dict[str, Any], expected: dict[str, Any]) -> None:
    config = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2,
                         rope_parameters={**rope, "rope_theta": 1e6})
    writer = gguf.GGUFWriter(path=None, arch="qwen2")
    gguf_export._add_hparams(writer, config, gguf.MODEL_ARCH.QWEN2)
    kv = {k: v.value for k, v in writer.kv_data[0].items()}
    assert kv["qwen2.rope.freq_base"] == 1e6
    assert {k.removeprefix("qwen2.rope.scaling."): v for k, v in kv.items()
            if k.startswith("qwen2.rope.scaling.")} == expected


def test_unsupported_rope_scaling_is_refused() -> None:
    llama3 = {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    config = LlamaConfig(hidden_size=64, num_attention_heads=4, max_position_embeddings=131072,
                         rope_parameters=llama3)
    writer = gguf.GGUFWriter(path=None, arch="llama")
    with pytest.raises(PlancodeError, match="llama3"):
        gguf_export._add_hparams(writer, config, gguf.MODEL_ARCH.LLAMA)


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


def test_export_agreement_forgives_near_ties_and_not_clear_winners() -> None:
    """float16 rounding may swap two tokens whose logits are nearly tied; a converter bug
    that swaps a clear winner must still count against the export."""
    from plancode.trainer.export import TIE_MARGIN, Reference, _near_tie

    ids = np.array([[5, 9, 1], [5, 9, 1], [5, 9, 1]])
    logits = np.array([[3.0, 3.0 - TIE_MARGIN / 4, 0.0],  # 5 and 9 nearly tied
                       [3.0, 1.0, 0.0],                   # 5 wins clearly
                       [3.0, 1.0, 0.0]])
    got = np.array([9, 9, 5])
    assert _near_tie(Reference(ids, logits), got).tolist() == [True, False, True]
