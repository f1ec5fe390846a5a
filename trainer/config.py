"""``plancode distill --config FILE.toml``: every stage's settings in one validated file.

    out_dir = "runs/my-student"

    [data]
    jsonl = ["problems.jsonl"]         # {problem, solution, tests} rows (MBPP/APPS shapes too)
    mine = ["~/src/my-project"]        # codebases: documented functions + their tests
    val_fraction = 0.1
    heldout_fraction = 0.0             # mined files kept out of training, for evaluation
    max_problems = 0                   # 0 = all
    decontaminate = true               # drop HumanEval n-gram overlaps and entry-point twins

    [teacher]                          # TeacherConfig
    backend = "gguf"
    model = "qwen2.5-coder-1.5b"
    plans_per_problem = 4

    [verify]                           # VerifyConfig
    coder = "student"                  # who writes code from each plan: student | teacher
    timeout = 10.0

    [train]                            # TrainConfig
    student = "qwen2.5-coder-0.5b"
    [train.loss]                       # LossConfig
    lam = 0.5

    [export]                           # ExportConfig
    quantize = ["Q8_0", "Q4_K_M"]

    [eval]                             # EvalSection (runs when enabled)
    enabled = false

    [samples]                          # SamplesConfig (``plancode samples``, on-policy data)
    max_problems = 400
    samples_per_problem = 4            # sample 0 greedy, the rest at temperature

    [onpolicy]                         # OnPolicyConfig (``plancode onpolicy``)
    objective = "topk"                 # reverse KL to the teacher on its best tokens

    [gate]                             # GateConfig (``plancode gate``: against forgetting)
    max_lost = 1

Unknown keys are errors that name the key and list the valid ones: a typo must not silently
train with a default.

This module is the one place the sections are typed, and it imports neither torch nor
llama.cpp: ``plancode train`` can load its config (and explain what is missing) on a machine
without them. The stages import their section from here, never the reverse.

Each section lists its *speed knobs* (``SPEED_KNOBS``): settings that change how fast a stage
runs but not what it writes (GPU layers, threads, checkpoint frequency, sandbox isolation...).
Stage fingerprints leave them out, so turning one never discards hours of cached work. A
setting added after runs were made lists in ``ADDED`` the value those runs had in effect: left
at that value it is left out of the fingerprint too, so their finished stages stay valid.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from plancode.engine.types import SamplingParams
from plancode.errors import PlancodeError

TEACHER_BACKENDS = ("gguf", "openai", "hf")
EVAL_MODES = ("direct", "plan", "select")
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class DataConfig:
    jsonl: list[str] = field(default_factory=list)
    mine: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    # share of mined *files* (all their functions) kept out of plans and training: a held-out
    # set of mined problems for evaluation besides HumanEval
    heldout_fraction: float = 0.0
    max_problems: int = 0
    max_chars: int = 0  # > 0: drop problems whose statement + solution is longer
    decontaminate: bool = True
    seed: int = 0

    SPEED_KNOBS: ClassVar[tuple[str, ...]] = ()

    def validate(self) -> None:
        for key in ("val_fraction", "heldout_fraction"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise PlancodeError(f"data.{key} = {getattr(self, key)} is outside [0, 1)",
                                    "give the share of problems to set aside, e.g. 0.1")


@dataclass
class TeacherConfig:
    """Which teacher to run and how to sample its plans."""

    backend: str = "gguf"
    model: str = "qwen2.5-coder-1.5b"  # catalog name / GGUF path; model name (openai); HF id
    url: str = ""  # base URL for backend "openai" (e.g. http://127.0.0.1:8080/v1)
    n_gpu_layers: int = 0
    n_threads: int = 0  # llama.cpp threads; 0 = one per core
    n_ctx: int = 4096
    plans_per_problem: int = 4  # K backward plans per problem
    temperature: float = 0.7  # the first plan is greedy, the rest sampled at this temperature
    max_tokens: int = 384
    seed: int = 0
    batch: int = 1  # plans decoded together in one llama.cpp batch per step (gguf backend)

    SPEED_KNOBS: ClassVar[tuple[str, ...]] = ("url", "n_gpu_layers", "n_threads", "batch")

    def validate(self) -> None:
        if self.backend not in TEACHER_BACKENDS:
            raise PlancodeError(f"teacher backend {self.backend!r} is not one of "
                                f"{TEACHER_BACKENDS}",
                                "set teacher.backend to 'gguf', 'openai' or 'hf'")
        if self.backend == "openai" and not self.url:
            raise PlancodeError("teacher backend 'openai' needs a URL",
                                "set teacher.url to the server's base URL, e.g. "
                                "http://127.0.0.1:8080/v1")
        if self.plans_per_problem < 1:
            raise PlancodeError("teacher.plans_per_problem must be at least 1",
                                "set it to the number of plans to sample per problem (K)")
        if not 1 <= self.batch <= 16:
            raise PlancodeError(f"teacher.batch = {self.batch} is outside 1..16",
                                "1 decodes plans one at a time; 4-8 suits a CPU")

    def plan_params(self, k: int) -> SamplingParams:
        """Plan ``k`` of a problem: greedy first, then seeded samples (reproducible)."""
        if k == 0:
            return SamplingParams(max_tokens=self.max_tokens, temperature=0.0)
        return SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature,
                              seed=self.seed + k)



VERIFY_CODERS = ("student", "teacher")
JUDGE_RULES = ("all", "reference")  # plancode.trainer.references says what each means


@dataclass
class VerifyConfig:
    """Plan verification: who turns each plan into code, and how that code is run.

    ``coder = "student"`` (default) has the *student* (a GGUF: ``coder_model``, else the
    train.student) write the code from the teacher's plan, so only plans the small model can
    follow become training data; ``"teacher"`` has the teacher write it (the older check: a
    plan the 1.5B can follow may still be beyond the 0.5B).
    """

    coder: str = "student"
    coder_model: str = ""  # GGUF/catalog name of the code writer; "" = train.student
    code_max_tokens: int = 512
    n_threads: int = 0
    n_gpu_layers: int = 0
    isolation: str = "auto"
    timeout: float = 10.0
    tidy_plans: bool = True  # plancode.trainer.plan_tidy: working steps only, one sentence each
    # which tests judge the code (plancode.trainer.references.JUDGE_RULES): "reference" =
    # those the problem's own solution passes
    judges: str = "reference"

    batch: int = 1  # plans turned into code together, one llama.cpp batch per step
    SPEED_KNOBS: ClassVar[tuple[str, ...]] = ("n_threads", "n_gpu_layers", "isolation", "batch")
    ADDED: ClassVar[dict[str, object]] = {"judges": "all"}  # the rule before the choice

    def validate(self) -> None:
        if self.coder not in VERIFY_CODERS:
            raise PlancodeError(f"verify.coder = {self.coder!r} is not one of {VERIFY_CODERS}",
                                "'student' verifies plans by the model being trained")
        if self.judges not in JUDGE_RULES:
            raise PlancodeError(f"verify.judges = {self.judges!r} is not one of {JUDGE_RULES}",
                                "'reference' judges by the tests the problem's solution passes")

    def code_params(self) -> SamplingParams:
        return SamplingParams(max_tokens=self.code_max_tokens, temperature=0.0)


@dataclass
class LossConfig:
    lam: float = 0.5  # weight of the plan task (CodePLAN's lambda)
    alpha: float = 1.0  # extra weight of structural code tokens
    beta: float = 0.1  # weight of the AST alignment head's loss
    code: bool = True
    plan: bool = True

    def validate(self) -> None:
        if not 0.0 <= self.lam <= 1.0:
            raise PlancodeError(f"loss.lam = {self.lam} is outside [0, 1]",
                                "lam weighs the plan task against the code task; 0.5 is "
                                "CodePLAN's choice")
        if self.alpha < 0 or self.beta < 0:
            raise PlancodeError("loss.alpha and loss.beta must be >= 0",
                                "use 0 to switch a term off")
        if not (self.code or self.plan or self.beta > 0):
            raise PlancodeError("every loss term is switched off",
                                "enable loss.code, loss.plan or set loss.beta > 0")


@dataclass
class TrainConfig:
    student: str = "qwen2.5-coder-0.5b"  # catalog name, .gguf path, HF directory or hub id
    tasks: tuple[str, ...] = ("plan", "code", "direct")
    # what the code and direct tasks learn to write: "reference", the problem's own solution
    # (library code: terse, rarely commented), or "verified", the code the verify stage's
    # coder wrote from the plan and the problem's tests passed (the plan's own realisation,
    # in the coder's own style)
    code_target: str = "reference"
    # code targets shaped as the server asks (its ``prefill_code``): the prompt ends with the
    # problem's function through its docstring, the target is the body
    prefill_code: bool = True
    max_len: int = 1024
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    epochs: float = 3.0
    max_steps: int = 0  # > 0 overrides epochs
    batch_size: int = 4
    grad_accum: int = 4
    save_every: int = 50  # checkpoint every N optimizer steps (0 = only by time / at the end)
    save_every_minutes: float = 0.0  # > 0: also checkpoint when this much time has passed
    # > 0: validation loss at a checkpoint only when this much time has passed since the last
    # one (and always at the end); 0: at every checkpoint. A CPU pass over the validation set
    # can take as long as many training steps.
    val_every_minutes: float = 0.0
    keep_checkpoints: int = 2
    threads: int = 0  # torch CPU threads; 0 = torch's default
    seed: int = 0
    # auto: bf16 mixed precision on a GPU that has it; on a CPU the *frozen base* is held in
    # bf16 where the CPU computes it natively (LoRA weights stay fp32). true/false force it.
    bf16: str = "auto"
    gradient_checkpointing: str = "auto"  # auto | true | false
    loss: LossConfig = field(default_factory=LossConfig)

    SPEED_KNOBS: ClassVar[tuple[str, ...]] = (
        "save_every", "save_every_minutes", "val_every_minutes", "keep_checkpoints", "threads",
        "bf16", "gradient_checkpointing")
    ADDED: ClassVar[dict[str, object]] = {"code_target": "reference"}
    CODE_TARGETS: ClassVar[tuple[str, ...]] = ("reference", "verified")

    def validate(self) -> None:
        self.loss.validate()
        if self.code_target not in self.CODE_TARGETS:
            raise PlancodeError(f"train.code_target = {self.code_target!r} is not one of "
                                f"{', '.join(self.CODE_TARGETS)}",
                                "'reference' trains on the problem's own solution, "
                                "'verified' on the code that passed verification")
        if self.lora_r < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise PlancodeError("train.lora_r, batch_size and grad_accum must be >= 1",
                                "fix the [train] section of the config")
        if min(self.save_every, self.save_every_minutes, self.val_every_minutes,
               self.threads) < 0:
            raise PlancodeError("train.save_every, save_every_minutes, val_every_minutes and "
                                "threads must be >= 0",
                                "use 0 to switch step-based / time-based checkpoints off")
        for key in ("bf16", "gradient_checkpointing"):
            if getattr(self, key) not in ("auto", "true", "false"):
                raise PlancodeError(f"train.{key} must be 'auto', 'true' or 'false'",
                                    "auto picks it for the device")


@dataclass
class ExportConfig:
    adapter: bool = True  # write the LoRA adapter as a GGUF adapter (served over the base)
    merge: bool = True  # write merged f16 + quantized GGUFs
    quantize: tuple[str, ...] = ("Q8_0", "Q4_K_M")
    min_agreement: float = 0.99
    agreement_sequences: int = 16  # held-out sequences compared
    max_positions: int = 512  # per sequence
    name: str = "plancode-student"
    # which run's LoRA is exported: "train" (the SFT stage's train/adapter) or "onpolicy"
    # (onpolicy/adapter, exported only once ``plancode gate`` accepted it, see GateConfig)
    adapter_from: str = "train"

    SPEED_KNOBS: ClassVar[tuple[str, ...]] = ()
    ADDED: ClassVar[dict[str, object]] = {"adapter_from": "train"}
    ADAPTERS: ClassVar[tuple[str, ...]] = ("train", "onpolicy")

    def validate(self) -> None:
        if self.adapter_from not in self.ADAPTERS:
            raise PlancodeError(f"export.adapter_from = {self.adapter_from!r} is not one of "
                                f"{', '.join(self.ADAPTERS)}",
                                "'train' exports train/adapter, 'onpolicy' onpolicy/adapter")


@dataclass
class EvalConfig:
    start: int = 0
    end: int = 164
    modes: tuple[str, ...] = EVAL_MODES
    candidates: int = 4
    repair_rounds: int = 2  # the server's defaults: evaluate what a user gets
    max_tokens: int = 512
    # the code reply starts with the function's signature and docstring (the server's
    # ``prefill_code``, on by default there too)
    prefill_code: bool = True
    n_gpu_layers: int = 0
    # seconds one pipeline answer may take (the server's ``budget``, 60 s by default there
    # too); a quality run beside other work, whose decoding is several times slower than a
    # user's, raises it so the budget does not decide the score
    budget: float = 60.0
    # llama.cpp threads per evaluated model; 0 = PLANCODE_N_THREADS, else every core. Two
    # evaluations side by side on 2 cores must each take 1: llama.cpp's threads spin at their
    # barriers, and 4 of them on 2 cores ran 20-60x slower (418 s for an 88-token answer)
    n_threads: int = 0
    tasks: list[int] = field(default_factory=list)
    # where the per-(problem, mode) rows are cached; runs that point at the same folder share
    # a model's rows (a distillation and its ablation evaluate the base once). "" = the
    # evaluation's own output folder
    rows_dir: str = ""
    # the larger model the pipeline escalates to, as the product does ("" = none: each
    # model is measured on its own, as base-vs-student comparisons need); a catalog name
    escalate_model: str = ""

    SPEED_KNOBS: ClassVar[tuple[str, ...]] = ("n_gpu_layers", "n_threads", "rows_dir")
    ADDED: ClassVar[dict[str, object]] = {"escalate_model": ""}

    def threads(self) -> int:
        """The thread count evaluated models run with (0: llama.cpp's default, every core)."""
        from plancode.config import Settings

        return self.n_threads or Settings.from_env().n_threads


@dataclass
class SamplesConfig:
    """The student's own answers to the training problems (``plancode samples``; the stage in
    ``plancode.trainer.stages.samples``): what on-policy distillation and learning from its
    own verified answers both start from.

    For each training problem (in a fixed order by a hash of its id, the first
    ``max_problems``) the student GGUF writes ``samples_per_problem`` direct answers with the
    server's direct prompt (sample 0 greedy, the rest seeded samples at ``temperature``); the
    problem's tests judge each (those its own solution passes), and the teacher GGUF scores
    every answer token (its log-probability of the sampled token and its ``score_top_k`` best
    tokens, cut once they hold ``score_top_mass`` of the probability). ``max_problems`` and
    ``samples_per_problem`` are work, not content: raising them adds rows and keeps the old.
    """

    student: str = ""  # the GGUF that answers; "" = train.student
    teacher: str = ""  # the GGUF that scores; "" = teacher.model (same vocabulary, checked)
    max_problems: int = 0  # 0 = every training problem
    samples_per_problem: int = 4
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    max_tokens: int = 384
    prefill_code: bool = True  # the reply starts with the function through its docstring
    score: bool = True  # teacher scores (off: answers and verdicts only)
    score_top_k: int = 8
    score_top_mass: float = 0.95
    seed: int = 0
    timeout: float = 30.0  # seconds a problem's tests may run
    n_ctx: int = 4096
    n_threads: int = 0  # llama.cpp threads of both models; 0 = PLANCODE_N_THREADS, else all
    n_gpu_layers: int = 0
    isolation: str = "auto"

    SPEED_KNOBS: ClassVar[tuple[str, ...]] = ("n_threads", "n_gpu_layers", "isolation")
    WORK: ClassVar[tuple[str, ...]] = ("max_problems", "samples_per_problem")

    def threads(self) -> int:
        """llama.cpp threads of both models (0: PLANCODE_N_THREADS, else every core)."""
        from plancode.config import Settings

        return self.n_threads or Settings.from_env().threads()

    def validate(self) -> None:
        if self.samples_per_problem < 1 or self.max_problems < 0:
            raise PlancodeError("samples.samples_per_problem must be >= 1 and "
                                "samples.max_problems >= 0",
                                "e.g. samples_per_problem = 4 (one greedy, three sampled)")
        if self.samples_per_problem > 16:
            raise PlancodeError("samples.samples_per_problem is at most 16",
                                "they are decoded together in one llama.cpp batch")
        if self.temperature <= 0 and self.samples_per_problem > 1:
            raise PlancodeError("samples.temperature must be > 0 when more than one answer "
                                "is sampled", "e.g. temperature = 0.8")
        if not 1 <= self.score_top_k <= 64 or not 0.0 < self.score_top_mass <= 1.0:
            raise PlancodeError("samples.score_top_k must be in 1..64 and score_top_mass in "
                                "(0, 1]", "e.g. score_top_k = 8, score_top_mass = 0.95")


ONPOLICY_LOSSES = ("topk", "sampled", "dpo")


@dataclass
class OnPolicyConfig:
    """On-policy distillation (``plancode onpolicy``; ``plancode.trainer.onpolicy``): the
    student's LoRA trained on its own answers (the samples stage's rows) to lower the
    per-token reverse KL to the teacher, with the structure-aware weights on code tokens.

    ``objective = "topk"`` (default) is the exact reverse KL between the student and the teacher
    coarse-grained to the teacher's stored best tokens plus one "rest" bucket; ``"sampled"``
    is the single-sample estimator ``log p_s(y) - log p_t(y)`` used as a REINFORCE advantage.
    ``sft_weight`` > 0 adds cross-entropy on the answers that passed their tests
    (rejection-sampled fine-tuning). Every ``anchor_every`` optimizer steps the mean KL of
    the LoRA student from its frozen base on ``anchor_prompts`` fixed rows is logged (how
    far training has moved it: forgetting grows with that distance).
    """

    student: str = ""  # "" = train.student (a GGUF dequantized by transformers, or HF weights)
    folder: str = "onpolicy"  # the run's folder under out_dir: variants share data and samples
    objective: str = "topk"  # topk | sampled | dpo (the field "loss" names a table elsewhere)
    alpha: float = 1.0  # extra weight of structural code tokens (plancode.trainer.structure)
    sft_weight: float = 0.0  # weight of cross-entropy on the passing answers (0 = off)
    dpo_beta: float = 0.1  # objective "dpo": how strongly the log-ratio is pushed
    dpo_pairs: int = 2  # objective "dpo": pairs a prompt at most
    max_rows: int = 0  # train on the first N rows of the samples file (0 = all present)
    max_len: int = 1024  # prompt + answer tokens; longer rows are left out and counted
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0  # dropout would make the KL to the teacher noisy
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 5
    epochs: float = 1.0
    max_steps: int = 0  # > 0 overrides epochs
    batch_size: int = 1
    grad_accum: int = 8
    anchor_prompts: int = 4  # fixed rows the KL from the base is measured on
    anchor_every: int = 10  # optimizer steps between anchor measurements (0: start and end)
    save_every: int = 0
    save_every_minutes: float = 15.0
    keep_checkpoints: int = 2
    threads: int = 0
    seed: int = 0
    bf16: str = "auto"
    gradient_checkpointing: str = "auto"

    SPEED_KNOBS: ClassVar[tuple[str, ...]] = (
        "anchor_every", "save_every", "save_every_minutes", "keep_checkpoints", "threads",
        "bf16", "gradient_checkpointing", "folder")

    def validate(self) -> None:
        if not self.folder or Path(self.folder).name != self.folder or \
                self.folder.startswith("."):
            raise PlancodeError(f"onpolicy.folder = {self.folder!r} is not a plain folder name",
                                "e.g. folder = 'onpolicy-rft' (it goes under out_dir)")
        if self.objective not in ONPOLICY_LOSSES:
            raise PlancodeError(f"onpolicy.objective = {self.objective!r} is not one of "
                                f"{', '.join(ONPOLICY_LOSSES)}",
                                "'topk' is the reverse KL over the teacher's best tokens")
        if min(self.alpha, self.sft_weight, self.max_rows, self.anchor_prompts,
               self.anchor_every, self.save_every, self.save_every_minutes,
               self.threads) < 0:
            raise PlancodeError("onpolicy.alpha, sft_weight, max_rows, anchor_prompts, "
                                "anchor_every, save_every, save_every_minutes and threads "
                                "must be >= 0", "use 0 to switch one off")
        if self.dpo_beta <= 0 or self.dpo_pairs < 1:
            raise PlancodeError("onpolicy.dpo_beta must be > 0 and dpo_pairs >= 1",
                                "e.g. dpo_beta = 0.1, dpo_pairs = 2")
        if self.lora_r < 1 or self.batch_size < 1 or self.grad_accum < 1 or \
                self.keep_checkpoints < 1:
            raise PlancodeError("onpolicy.lora_r, batch_size, grad_accum and keep_checkpoints "
                                "must be >= 1", "fix the [onpolicy] section of the config")
        for key in ("bf16", "gradient_checkpointing"):
            if getattr(self, key) not in ("auto", "true", "false"):
                raise PlancodeError(f"onpolicy.{key} must be 'auto', 'true' or 'false'",
                                    "auto picks it for the device")


@dataclass
class GateConfig:
    """The gates against forgetting (``plancode gate``; ``plancode.trainer.gates``): a
    checkpoint's adapter, exported to GGUF over the base, answers a fixed HumanEval slice
    (``humaneval``: task numbers, every 4th of the 164 by default) and the first
    ``heldout_problems`` held-out mined problems in direct mode through llama.cpp, and is
    compared problem by problem with the base on the same slices. A checkpoint whose solved
    count falls more than ``max_lost`` below the base's on either slice is refused: the
    export never ships it. ``required``: the export of an on-policy adapter needs a gate
    report that accepted it."""

    humaneval: list[int] = field(default_factory=lambda: list(range(0, 160, 4)))
    heldout_problems: int = 40  # 0: no held-out slice
    max_lost: int = 1
    max_tokens: int = 512
    prefill_code: bool = True
    required: bool = True
    n_threads: int = 0  # llama.cpp threads; 0 = PLANCODE_N_THREADS, else every core
    n_gpu_layers: int = 0
    rows_dir: str = ""  # where the rows are cached ("" = <out_dir>/gate)

    SPEED_KNOBS: ClassVar[tuple[str, ...]] = ("n_threads", "n_gpu_layers", "rows_dir")

    def validate(self) -> None:
        if self.max_lost < 0 or self.heldout_problems < 0 or self.max_tokens < 1:
            raise PlancodeError("gate.max_lost and gate.heldout_problems must be >= 0 and "
                                "gate.max_tokens >= 1", "e.g. max_lost = 1")
        bad = [t for t in self.humaneval if not 0 <= t < 164]
        if bad or not self.humaneval:
            raise PlancodeError(f"gate.humaneval must name HumanEval task numbers 0..163 "
                                f"(got {bad or 'none'})", "e.g. humaneval = [0, 4, 8]")

    def eval_config(self) -> EvalConfig:
        """The slice as the HumanEval runner's settings (direct mode, the rows' names)."""
        return EvalConfig(modes=("direct",), max_tokens=self.max_tokens,
                          prefill_code=self.prefill_code, n_threads=self.n_threads,
                          n_gpu_layers=self.n_gpu_layers, tasks=list(self.humaneval))


EVAL_COMPARE = ("adapter", "requantized")


@dataclass
class EvalSection(EvalConfig):
    """``plancode eval``'s settings, plus whether the run evaluates and what it compares.

    ``compare = "adapter"``: the untouched base GGUF alone against the same file with the
    student's GGUF adapter applied (like with like: same quantized weights underneath).
    ``"requantized"``: the base and the merged student, each exported to f16 and quantized
    to ``quant`` by the same code.
    """

    enabled: bool = False
    compare: str = "adapter"
    quant: str = "Q4_K_M"  # which exported file to evaluate (compare = "requantized")
    heldout: bool = True  # also the held-out mined problems
    docs: str = ""  # where the table and plot go (default: the run's eval/ folder)

    SPEED_KNOBS: ClassVar[tuple[str, ...]] = ("n_gpu_layers", "n_threads", "docs", "rows_dir")

    def validate(self) -> None:
        if self.compare not in EVAL_COMPARE:
            raise PlancodeError(f"eval.compare = {self.compare!r} is not one of {EVAL_COMPARE}",
                                "'adapter' compares base and base + adapter on the same file")


_NESTED = {"loss": LossConfig}


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise PlancodeError(f"[{where}] must be a table", f"write it as [{where}] key = value")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise PlancodeError(f"unknown key(s) in [{where}]: {', '.join(unknown)}",
                            f"valid keys: {', '.join(sorted(fields))}")
    kwargs = {}
    defaults = cls()
    for name, value in data.items():
        default = getattr(defaults, name)
        if name in _NESTED:
            value = _build(_NESTED[name], value, f"{where}.{name}")
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif isinstance(default, bool) and not isinstance(value, bool):
            raise PlancodeError(f"{where}.{name} must be true or false", "fix the config")
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value,
                                                                                        bool):
            value = float(value)
        elif default is not None and not isinstance(value, type(default)):
            raise PlancodeError(f"{where}.{name} = {value!r} should be a "
                                f"{type(default).__name__}", "fix the config")
        kwargs[name] = value
    return cls(**kwargs)


def _read_toml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A config file as a dict; ``extends = "OTHER.toml"`` (next to it) starts from that file's
    settings, and this file's sections override it key by key (an ablation names only what
    it changes)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlancodeError(f"{path} does not exist", "give the path of a TOML config "
                            "(see docs/training.md for an example)") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlancodeError(f"{path} is not valid TOML: {exc}", "fix the syntax") from None
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    base = (path.resolve().parent / parent).resolve()
    if base.parent != path.resolve().parent:
        raise PlancodeError(f"{path}: extends = {parent!r} is not in the same folder",
                            "keep an extended config next to the one that extends it (their "
                            "relative paths are read from that one folder)")
    if base in seen or base == path.resolve():
        raise PlancodeError(f"{path}: extends {parent!r} in a circle", "break the chain")
    return _merge(_read_toml(base, (*seen, path.resolve())), raw)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = (_merge(out[key], value) if isinstance(value, dict)
                    and isinstance(out.get(key), dict) else value)
    return out


def output_settings(section: Any) -> dict:
    """A section as plain data without its speed knobs: what a stage fingerprint hashes."""
    data = dataclasses.asdict(section)
    for knob in getattr(section, "SPEED_KNOBS", ()):
        data.pop(knob, None)
    for key, default in getattr(section, "ADDED", {}).items():
        if data.get(key) == default:
            data.pop(key)
    return data


@dataclass
class DistillConfig:
    out_dir: Path
    data: DataConfig
    teacher: TeacherConfig
    verify: VerifyConfig
    train: TrainConfig
    export: ExportConfig
    eval: EvalSection
    samples: SamplesConfig = field(default_factory=SamplesConfig)
    onpolicy: OnPolicyConfig = field(default_factory=OnPolicyConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    base: Path = Path(".")  # the config file's folder: relative paths start here
    # another run's folder: finished stages with the same fingerprint are copied from it
    # instead of being run again (an ablation trains differently on the same plans)
    reuse_from: Path | None = None

    @classmethod
    def from_dict(cls, raw: dict, base: Path) -> DistillConfig:
        sections = {"data", "teacher", "verify", "train", "export", "eval", "samples",
                    "onpolicy", "gate", "out_dir", "reuse_from"}
        unknown = sorted(set(raw) - sections)
        if unknown:
            raise PlancodeError(f"unknown section(s): {', '.join(unknown)}",
                                f"valid: {', '.join(sorted(sections))}")
        if "out_dir" not in raw:
            raise PlancodeError("the config has no out_dir",
                                'add out_dir = "runs/NAME" at the top (stage outputs go there)')
        out = Path(raw["out_dir"]).expanduser()
        cfg = cls(
            out_dir=out if out.is_absolute() else base / out,
            data=_build(DataConfig, raw.get("data", {}), "data"),
            teacher=_build(TeacherConfig, raw.get("teacher", {}), "teacher"),
            verify=_build(VerifyConfig, raw.get("verify", {}), "verify"),
            train=_build(TrainConfig, raw.get("train", {}), "train"),
            export=_build(ExportConfig, raw.get("export", {}), "export"),
            eval=_build(EvalSection, raw.get("eval", {}), "eval"),
            samples=_build(SamplesConfig, raw.get("samples", {}), "samples"),
            onpolicy=_build(OnPolicyConfig, raw.get("onpolicy", {}), "onpolicy"),
            gate=_build(GateConfig, raw.get("gate", {}), "gate"),
            base=base,
            reuse_from=Path(_path(raw["reuse_from"], base)) if raw.get("reuse_from") else None,
        )
        cfg.data.jsonl = [_path(p, base) for p in cfg.data.jsonl]
        cfg.data.mine = [_path(p, base) for p in cfg.data.mine]
        if cfg.eval.docs:
            cfg.eval.docs = _path(cfg.eval.docs, base)
        if cfg.eval.rows_dir:
            cfg.eval.rows_dir = _path(cfg.eval.rows_dir, base)
        if cfg.gate.rows_dir:
            cfg.gate.rows_dir = _path(cfg.gate.rows_dir, base)
        cfg.data.validate()
        cfg.teacher.validate()
        cfg.verify.validate()
        cfg.train.validate()
        cfg.eval.validate()
        cfg.samples.validate()
        cfg.onpolicy.validate()
        cfg.export.validate()
        cfg.gate.validate()
        if not cfg.data.jsonl and not cfg.data.mine:
            raise PlancodeError("[data] names no training data",
                                "set data.jsonl = [FILES] and/or data.mine = [CODEBASE DIRS]")
        return cfg

    @classmethod
    def load(cls, path: Path) -> DistillConfig:
        return cls.from_dict(_read_toml(path), path.resolve().parent)

    @property
    def onpolicy_dir(self) -> Path:
        """The on-policy run's folder (adapter, checkpoints, report, gate log)."""
        return self.out_dir / self.onpolicy.folder

    def section(self, name: str) -> dict:
        """A section's output-changing settings as plain data (stage fingerprints hash this)."""
        return output_settings(getattr(self, name))

    @property
    def coder_model(self) -> str:
        """The GGUF that writes code from plans at verification (student by default)."""
        if self.verify.coder == "teacher":
            return self.teacher.model
        return self.verify.coder_model or self.train.student


def _path(p: str, base: Path) -> str:
    path = Path(p).expanduser()
    return str(path if path.is_absolute() else base / path)
