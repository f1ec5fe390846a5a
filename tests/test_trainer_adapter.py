"""The student ships as a GGUF LoRA adapter over the untouched base: export it from peft's
format without torch, load it in llama-cpp-python with ``lora_path``, and check that it is the
same model as the merged student (torch's merge, and the torch-free GGUF merge).

A tiny randomly initialised qwen2 student with the real Qwen tokenizer gets a LoRA adapter
whose B matrices are random too (peft starts them at zero, which would make every check pass
trivially); the test first checks that the adapter does change the base's predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from llama_cpp import Llama  # noqa: E402

from plancode.errors import PlancodeError  # noqa: E402
from plancode.trainer.gguf_adapter import export_adapter, merge_adapter, read_adapter  # noqa: E402
from plancode.trainer.gguf_export import write_gguf  # noqa: E402

TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "1. Split the text into words.\n2. Count each word.\n3. Return the counts.",
    "class Stack:\n    def push(self, item):\n        self.items.append(item)\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i)\n",
]


def _top1_llama(path: Path, seqs: list[list[int]], lora: Path | None = None) -> list[np.ndarray]:
    llm = Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False,
                lora_path=str(lora) if lora else None)
    out = []
    try:
        for ids in seqs:
            llm.reset()
            llm.eval(ids)
            out.append(np.asarray(llm.scores[: len(ids)]).argmax(-1))
    finally:
        llm.close()
    return out


def _agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    same = sum(int((x == y).sum()) for x, y in zip(a, b, strict=True))
    return same / sum(len(x) for x in a)


@pytest.fixture(scope="module")
def student(tiny_qwen_student: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = tmp_path_factory.mktemp("adapter")
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_student)
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen_student, dtype=torch.float32).eval()
    base_gguf = write_gguf(base, tokenizer, work / "base-f16.gguf")
    torch.manual_seed(1)
    peft_model = get_peft_model(base, LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.05)
    peft_model.save_pretrained(work / "peft")
    merged = peft_model.merge_and_unload().eval()
    seqs = [tokenizer(t)["input_ids"] for t in TEXTS]
    with torch.no_grad():
        reference = [merged(torch.tensor([s])).logits[0].argmax(-1).numpy() for s in seqs]
    return {"work": work, "base_gguf": base_gguf, "peft": work / "peft", "seqs": seqs,
            "reference": reference}


def test_exported_adapter_over_the_base_is_the_merged_student(student: dict) -> None:
    adapter = export_adapter(student["peft"], student["base_gguf"],
                             student["work"] / "student.lora.gguf")
    seqs, reference = student["seqs"], student["reference"]
    without = _top1_llama(student["base_gguf"], seqs)
    with_adapter = _top1_llama(student["base_gguf"], seqs, lora=adapter)
    assert _agreement(without, reference) < 0.8, "the adapter must change the predictions"
    assert _agreement(with_adapter, reference) >= 0.98
    alpha, pairs = read_adapter(adapter)
    assert alpha == 16.0 and len(pairs) == 2 * 6  # 2 layers x 6 adapted projections
    a, b = pairs["blk.0.attn_q.weight"]
    assert a.shape[0] == 8 and b.shape[1] == 8


def test_torch_free_merge_agrees_with_the_adapter(student: dict) -> None:
    adapter = export_adapter(student["peft"], student["base_gguf"],
                             student["work"] / "merge.lora.gguf")
    merged = merge_adapter(student["base_gguf"], adapter, student["work"] / "merged-f16.gguf")
    seqs = student["seqs"]
    assert _agreement(_top1_llama(merged, seqs), student["reference"]) >= 0.98
    assert _agreement(_top1_llama(merged, seqs),
                      _top1_llama(student["base_gguf"], seqs, lora=adapter)) >= 0.98


def test_an_adapter_for_another_architecture_is_refused(student: dict,
                                                        tiny_model_path: Path) -> None:
    adapter = export_adapter(student["peft"], student["base_gguf"],
                             student["work"] / "other.lora.gguf")
    with pytest.raises(PlancodeError) as err:  # smollm2 is a llama, the adapter a qwen2
        merge_adapter(tiny_model_path, adapter, student["work"] / "x.gguf")
    assert "qwen2" in err.value.message and err.value.fix


def test_a_folder_without_an_adapter_names_the_fix(tmp_path: Path, student: dict) -> None:
    with pytest.raises(PlancodeError) as err:
        export_adapter(tmp_path, student["base_gguf"], tmp_path / "a.gguf")
    assert "adapter_config.json" in err.value.message and "train" in err.value.fix
