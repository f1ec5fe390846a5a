"""``plancode complete PATH:LINE``: plan then code the function at a line of a file."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from server.analysis.functions import FunctionInfo, find_function
from server.config import Settings
from server.engine.factory import load_engine
from server.engine.types import SamplingParams
from server.errors import PlancodeError
from server.pipeline import PlanAndCode, plan_then_code


def parse_target(target: str) -> tuple[Path, int]:
    """Split ``PATH:LINE`` (1-based line) with a clear error when it is malformed."""
    path, sep, line = target.rpartition(":")
    if not sep or not path or not line.isdigit() or int(line) < 1:
        raise PlancodeError(f"bad target {target!r}", "write it as PATH:LINE, e.g. src/util.py:12")
    return Path(path), int(line)


def read_source(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlancodeError(f"{path} does not exist", "check the path") from None
    except IsADirectoryError:
        raise PlancodeError(f"{path} is a directory", "give a Python file") from None
    except UnicodeDecodeError as exc:
        raise PlancodeError(f"{path} is not UTF-8 text ({exc.reason})",
                            "save the file as UTF-8") from None


def locate_function(path: Path, line: int) -> FunctionInfo:
    source = read_source(path)
    n_lines = source.count("\n") + 1
    if line > n_lines:
        raise PlancodeError(f"{path} has {n_lines} lines; line {line} is past the end",
                            "give a line number inside the file")
    info = find_function(source, line - 1)
    if info is None:
        raise PlancodeError(f"no function definition spans {path}:{line}",
                            "point at a line inside a def (its signature or docstring)")
    return info


def _status(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_complete(target: str, settings: Settings, as_json: bool = False) -> int:
    path, line = parse_target(target)
    info = locate_function(path, line)
    _status(f"function {info.qualname} at {path}:{info.start_line + 1}; loading {settings.model}")
    t0 = time.perf_counter()
    engine = load_engine(settings)
    load_seconds = time.perf_counter() - t0
    params = SamplingParams(max_tokens=settings.max_tokens, temperature=0.0, seed=settings.seed)
    _status("planning and coding (greedy) ...")
    result = plan_then_code(engine, info.problem, params)
    if as_json:
        print(json.dumps(to_json(info, path, result, load_seconds), indent=2))
    else:
        print_human(info, result, load_seconds)
    return 0


def to_json(info: FunctionInfo, path: Path, r: PlanAndCode, load_seconds: float) -> dict:
    return {
        "file": str(path),
        "function": info.qualname,
        "line": info.start_line + 1,
        "plan": r.plan,
        "code": r.code,
        "timings": {
            "load_seconds": round(load_seconds, 3),
            "total_seconds": round(r.seconds, 3),
            "plan": _gen_stats(r.plan_generation),
            "code": _gen_stats(r.code_generation),
        },
    }


def _gen_stats(g) -> dict:
    return {
        "prompt_tokens": g.prompt_tokens,
        "evaluated_tokens": g.evaluated_tokens,
        "reused_tokens": g.reused_tokens,
        "completion_tokens": g.completion_tokens,
        "prompt_seconds": round(g.prompt_seconds, 3),
        "decode_seconds": round(g.decode_seconds, 3),
        "finish_reason": g.finish_reason,
    }


def print_human(info: FunctionInfo, r: PlanAndCode, load_seconds: float) -> None:
    print(f"== {info.qualname}: plan ==")
    print(r.plan or "(the model wrote no plan)")
    print(f"\n== {info.qualname}: code ==")
    print(r.code or "(the model wrote no code)")
    p, c = r.plan_generation, r.code_generation
    print(
        f"\n(model load {load_seconds:.1f}s; plan {p.completion_tokens} tok in "
        f"{p.prompt_seconds + p.decode_seconds:.1f}s; code {c.completion_tokens} tok in "
        f"{c.prompt_seconds + c.decode_seconds:.1f}s, {c.reused_tokens} prompt tokens reused; "
        f"total {r.seconds:.1f}s; not yet verified against tests)"
    )
