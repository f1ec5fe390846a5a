"""Every plancode setting, in one dataclass, validated and documented once.

The CLI, the language server (``initializationOptions`` and ``workspace/didChangeConfiguration``)
and the editor extensions all use these keys. Editors may spell keys in camelCase
(``nGpuLayers``); both spellings map to the same field. ``plancode config`` prints this table.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plancode.errors import PlancodeError
from plancode.models.catalog import DEFAULT_MODEL


def _setting(default: Any, doc: str, check: Callable[[Any], str] | None = None) -> Any:
    return field(default=default, metadata={"doc": doc, "check": check})


def _range(lo: float, hi: float) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        return "" if lo <= v <= hi else f"must be between {lo} and {hi}"
    return check


def _one_of(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        return "" if v in options else f"must be one of {', '.join(options)}"
    return check


def _url(v: Any) -> str:
    return "" if v == "" or re.match(r"https?://", v) else "must start with http:// or https://"


def _model_or_endpoint(v: Any) -> str:
    """A model name, or ``NAME@URL`` naming a model on an OpenAI-compatible server."""
    if "@" not in v:
        return ""
    name, _, url = v.partition("@")
    if not name or not re.match(r"https?://[^\s/]+", url):
        return ("must be a model name or MODEL@URL with an http(s) base URL, "
                "e.g. qwen2.5-coder-7b@http://gpu-box:8080/v1")
    return ""


@dataclass(frozen=True)
class Settings:
    """plancode's settings. Construct from user input with :meth:`from_mapping`."""

    model: str = _setting(
        DEFAULT_MODEL, "catalog name, path to a .gguf file, or hf:OWNER/REPO/FILE.gguf")
    backend: str = _setting(
        "llama", "'llama' (in-process llama.cpp) or 'openai' (an OpenAI-compatible server)",
        _one_of("llama", "openai"))
    remote_url: str = _setting(
        "", "base URL of the OpenAI-compatible server when backend is 'openai'", _url)
    n_gpu_layers: int = _setting(
        0, "layers offloaded to the GPU: 0 = CPU only, -1 = all", _range(-1, 10_000))
    n_threads: int = _setting(
        0, "CPU threads for llama.cpp; 0 = one per core", _range(0, 1024))
    n_ctx: int = _setting(
        4096, "context window in tokens", _range(256, 131_072))
    candidates: int = _setting(
        4, "plan-then-code candidates per function (first greedy, rest sampled)",
        _range(1, 32))
    repair_rounds: int = _setting(
        2, "most repair rounds (plan and code shown their failing tests, actual vs expected) "
        "when no candidate passes; a round that gets no closer ends them", _range(0, 5))
    parallel_candidates: int = _setting(
        4, "when the whole pool is made (weak or no user tests), this many direct candidates "
        "(greedy + sampled) are decoded together as one llama.cpp batch; 1 = one at a time",
        _range(1, 16))
    escalate_model: str = _setting(
        "auto", "a larger model tried only when no candidate of `model` passes the user's "
        "tests, or when they are weak and the candidates that pass them are few or disagree: "
        "a model name, 'auto' (qwen2.5-coder-1.5b if it is already in the model store; never "
        "downloads), MODEL@URL for a model on an OpenAI-compatible server (a team's GPU box "
        "running llama-server or vLLM, e.g. qwen2.5-coder-7b@http://gpu-box:8080/v1), or '' "
        "(never)", _model_or_endpoint)
    budget: float = _setting(
        55.0, "seconds a whole `plancode complete` run may take: at the budget the best "
        "answer so far is returned and says so (decoding, tests, escalation and repair stop "
        "within about a second); 55 s: on 2 cores a direct answer takes ~5 s and a verified "
        "one ~10-40 s, and with the model's load and that second the whole command ends "
        "within a minute",
        _range(5.0, 3600.0))
    editor_budget: float = _setting(
        30.0, "the same for an implement run started in the editor, where the first answer "
        "that passes your tests is shown at once and the search goes on only while it can "
        "still change it", _range(5.0, 3600.0))
    docstring_examples: bool = _setting(
        True, "treat the function's docstring examples (>>> doctests and prose such as "
        "'f(1) == 2', 'f(1) -> 2') as the user's tests")
    prefill_code: bool = _setting(
        True, "start the model's code reply with the function's signature and docstring, so "
        "it writes only the body (the small models copy the docstring back otherwise)")
    prefill_tests: bool = _setting(
        True, "start the model's test-writing reply at its first assert (`assert NAME`), so it "
        "writes asserts at once (the 0.5B often re-implemented the function first)")
    max_tokens: int = _setting(
        512, "most tokens generated for one plan or one piece of code", _range(1, 8192))
    temperature: float = _setting(
        0.7, "sampling temperature for non-greedy candidates", _range(0.0, 2.0))
    seed: int = _setting(0, "random seed; the same seed gives the same candidates",
                         _range(0, 2**31 - 1))
    test_timeout: float = _setting(
        10.0, "seconds a candidate's test run may take", _range(0.1, 600.0))
    test_command: str = _setting(
        "", "extra shell command run in the sandboxed copy as one more test (passes on exit 0)")
    isolation: str = _setting(
        "auto", "sandbox: 'auto' (bubblewrap if it works, else the kernel fallback), 'bwrap', "
        "'landlock' (namespaces + Landlock + seccomp; 'rlimit' is its old name), or "
        "'none-i-accept-the-risk' (run model code unconfined when nothing else works)",
        _one_of("auto", "bwrap", "landlock", "rlimit", "none-i-accept-the-risk"))
    sandbox_exclude: str = _setting(
        "", "comma-separated file-name patterns also masked in the sandbox's view of the "
        "workspace (secret-looking names such as .env*, *.pem, *.key, id_rsa* always are)")
    sandbox_memory_mb: int = _setting(
        1024, "memory one test run may use, all its processes and the files it writes "
        "together (a cgroup where one can be made, else per process; `plancode doctor` says "
        "which)", _range(64, 65536))
    sandbox_write_mb: int = _setting(
        512, "what one test run may write in all (/tmp, /dev/shm and new files in the "
        "workspace view, on size-limited tmpfs; the workspace itself is never written)",
        _range(16, 65536))
    plan_comments: bool = _setting(
        True, "put the plan above suggested code as a short comment block")
    inline_max_tokens: int = _setting(
        96, "most tokens of one ghost-text (fill-in-the-middle) suggestion", _range(1, 1024))
    inline_budget_ms: int = _setting(
        250, "answer a multi-line suggestion with its whole lines once this many ms have "
        "passed (the first line as soon as it is done, if later); the rest follows in the "
        "background; 0 = as soon as one line is done", _range(0, 60_000))
    inline_debounce_ms: int = _setting(
        100, "while keystrokes come faster than this, wait about one typing interval "
        "before running the model (0 = never wait)", _range(0, 2000))
    inline_prefetch: bool = _setting(
        True, "after a suggestion, compute the next one as if it were accepted (cancelled "
        "by the next keystroke that needs the model)")
    inline_context: bool = _setting(
        True, "send chunks of other open or recently edited files, and the definitions the "
        "code at the cursor names, with each suggestion")
    inline_verify: bool = _setting(
        True, "in an empty function, start a verified implementation in the background and "
        "offer it as ghost text once ready")

    @classmethod
    def setting_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: Settings | None = None) -> Settings:
        """Settings from user input over ``base``; bad keys or values raise, naming the key."""
        base = base or cls()
        fields = {f.name: f for f in dataclasses.fields(cls)}
        changes: dict[str, Any] = {}
        for raw_key, raw in values.items():
            key = _snake(raw_key)
            if key not in fields:
                raise PlancodeError(
                    f"unknown setting {raw_key!r}",
                    f"valid settings are: {', '.join(fields)}",
                )
            if raw is None:
                continue
            f = fields[key]
            value = _coerce(raw_key, raw, type(f.default))
            check = f.metadata.get("check")
            problem = check(value) if check else ""
            if problem:
                raise PlancodeError(f"setting {raw_key!r} = {raw!r} {problem}",
                                    f"{key}: {f.metadata['doc']}")
            changes[key] = value
        merged = dataclasses.replace(base, **changes)
        if merged.backend == "openai" and not merged.remote_url:
            raise PlancodeError("setting 'backend' = 'openai' needs 'remote_url'",
                                "set remote_url to the server's base URL, e.g. http://127.0.0.1:8080/v1")
        return merged

    @classmethod
    def from_env(cls, base: Settings | None = None) -> Settings:
        """Settings from ``PLANCODE_<KEY>`` environment variables (e.g. PLANCODE_N_THREADS)."""
        env = {k: os.environ[f"PLANCODE_{k.upper()}"] for k in cls.setting_names()
               if f"PLANCODE_{k.upper()}" in os.environ}
        return cls.from_mapping(env, base)

    def threads(self) -> int:
        return self.n_threads or (os.cpu_count() or 1)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _coerce(key: str, raw: Any, kind: type) -> Any:
    try:
        if kind is bool:
            if isinstance(raw, str):
                lowered = raw.strip().lower()
                if lowered in {"1", "true", "yes", "on"}:
                    return True
                if lowered in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(raw)
            if isinstance(raw, bool):
                return raw
            raise ValueError(raw)
        if kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if kind is float:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if not isinstance(raw, str):
            raise ValueError(raw)
        return raw
    except (TypeError, ValueError):
        raise PlancodeError(
            f"setting {key!r} = {raw!r} is not a valid {kind.__name__}",
            f"give {key} a {kind.__name__} value",
        ) from None


def describe() -> str:
    """The settings table: key, default, meaning."""
    rows = []
    for f in dataclasses.fields(Settings):
        rows.append(f"{f.name:<14} {f.default!r:<22} {f.metadata['doc']}")
    return "\n".join(rows)
