"""A/B of prompt-lookup decoding against the plain greedy loop, interleaved prompt by prompt.

    python -m benchmarks.lookup_ab [--models qwen2.5-coder-1.5b,qwen2.5-coder-0.5b]
        [--n 3] [--k 15] [--ngram 8,6] [--threads 2] [--max-tokens 512]

Two prompt sets from HumanEval, both as the pipeline sends them (``plancode.prompts``):

- ``repair``: the repair prompt of a failed attempt. The attempt is the problem's reference
  solution with one operator mutated (the first mutation, in a fixed list, that makes one of
  the problem's own asserts fail); the failure text is that assert, as a verdict line. The
  corrected function copies most of the attempt: the case prompt lookup is for.
- ``direct``: the direct code request with the reply prefilled up to the docstring, as
  ``prefill_code`` does: only the body is written, and little of it is in the prompt.

For each model, each prompt is answered greedily by every arm (``lookup_draft`` 0 = plain,
then each K), each from a cold KV cache, in an order that rotates from prompt to prompt, on
one loaded engine: load falls on all arms alike. The machine's load average is recorded
before and after each model. A short microbenchmark first times one ``llama_decode`` of a
batch of 1..16 tokens after a prompt: what a verified draft costs against one token.

Output: per model and set, median decode tokens/s and median wall seconds per generation of
each arm, the ratio plain/lookup of the medians and the median per-prompt ratio, the draft
acceptance rate (accepted / drafted), the share of output tokens that came from drafts, and
how many outputs were identical to the plain loop's (llama.cpp computes a batch with other
kernels than one token, so a near-tie can flip; the shared prefix is reported too). JSON in
benchmarks/results/lookup-ab.json, rewritten after every prompt.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import signal
import statistics
import sys
import time
from pathlib import Path

from benchmarks.machine import cpu_name
from plancode import prompts
from plancode.engine.llama_engine import MAIN_SEQ, LlamaEngine
from plancode.engine.types import SamplingParams
from plancode.models.store import ModelStore
from plancode.trainer import humaneval
from plancode.trainer.decontam import load_humaneval

REPO = Path(__file__).resolve().parent.parent
MUTATIONS = [(" < ", " <= "), (" > ", " >= "), (" <= ", " < "), (" >= ", " > "),
             (" + 1", ""), (" - 1", ""), (" == ", " != "), (" and ", " or "),
             (" or ", " and "), ("True", "False"), ("[::-1]", ""), (" + ", " - ")]


class _Timeout(Exception):
    pass


def _alarm(signum, frame):  # noqa: ANN001 - signal handler signature
    raise _Timeout


def first_failure(problem: dict, code: str) -> str | None:
    """The first of the problem's asserts that ``code`` fails, as a verdict line (None if
    every one passes). HumanEval's own reference tests, run in-process with a time limit:
    trusted code, the mutants only change an operator of the reference solution."""
    entry = problem["entry_point"]
    check = next(n for n in ast.parse(problem["test"]).body
                 if isinstance(n, ast.FunctionDef) and n.name == "check")
    asserts = [n for n in ast.walk(check) if isinstance(n, ast.Assert)]
    space: dict = {}
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        signal.alarm(2)
        exec(compile(code, "<candidate>", "exec"), space)  # noqa: S102 - see docstring
        signal.alarm(0)
        for node in asserts:
            stmt = ast.unparse(node)
            try:
                signal.alarm(2)
                exec(stmt, {**space, "candidate": space[entry]})  # noqa: S102
            except (_Timeout, Exception) as exc:  # noqa: BLE001 - any failure is the failure
                shown = stmt.replace("candidate(", f"{entry}(")
                return (f"test_problem.py::test_hidden: failed: {shown}\n"
                        f"{type(exc).__name__}: {exc}".rstrip(": "))
            finally:
                signal.alarm(0)
    except (_Timeout, Exception):  # noqa: BLE001 - a mutant that does not even load
        return None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return None


def repair_prompts(n: int) -> list[tuple[str, list[prompts.Message]]]:
    """``n`` repair prompts: (task id, messages), from the first problems with a mutant."""
    out = []
    for p in load_humaneval():
        info = humaneval.target(p, p["prompt"])
        if info is None:
            continue
        for old, new in MUTATIONS:
            body = p["canonical_solution"]
            if old not in body:
                continue
            code = p["prompt"] + body.replace(old, new, 1)
            failure = first_failure(p, code)
            if failure:
                func = humaneval.target(p, code)  # the attempt's function, as a verdict shows it
                shown = code if func is None else "\n".join(
                    code.splitlines()[func.start_line:func.end_line + 1]) + "\n"
                out.append((p["task_id"], prompts.repair_messages(
                    info.problem, "(no plan)", shown, failure, info.context)))
                break
        if len(out) == n:
            break
    return out


def direct_prompts(n: int) -> list[tuple[str, list[prompts.Message]]]:
    """``n`` direct code prompts with the reply prefilled, as the pipeline sends them."""
    out = []
    for p in load_humaneval()[:n]:
        info = humaneval.target(p, p["prompt"])
        assert info is not None
        messages, _ = prompts.prefilled(prompts.direct_code_messages(info.problem, info.context),
                                        info.problem, True)
        out.append((p["task_id"], messages))
    return out


def batch_costs(engine: LlamaEngine, sizes: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16),
                reps: int = 7) -> dict[str, float]:
    """Median seconds of one ``llama_decode`` of a batch of each size (logits for every
    token) after a ~300-token prompt; the sizes interleaved rep by rep (load falls on all)."""
    engine.reset_cache()
    engine.complete("def f(x):\n    return x\n" * 30, SamplingParams(max_tokens=1))
    llm = engine._llm
    n = llm.n_tokens
    times: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(reps):
        for size in sizes:
            llm._ctx.kv_cache_seq_rm(-1, n, -1)
            start = time.perf_counter()
            engine._decode_batch([220] * size, n, MAIN_SEQ, all_logits=True)
            times[size].append(time.perf_counter() - start)
    llm._ctx.kv_cache_seq_rm(-1, n, -1)
    engine.reset_cache()
    return {str(size): round(statistics.median(t), 5) for size, t in times.items()}


def shared_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def summarise(rows: list[dict], arms: list[int]) -> dict:
    plain = [r["arms"]["0"] for r in rows]
    out: dict = {"n": len(rows)}
    for k in arms:
        a = [r["arms"][str(k)] for r in rows]
        s = {"median_tokens_per_second": round(statistics.median(x["tok_s"] for x in a), 2),
             "median_wall_seconds": round(statistics.median(x["wall"] for x in a), 3),
             "median_cpu_seconds": round(statistics.median(x.get("cpu", 0) for x in a), 3),
             "median_cpu_per_token": round(statistics.median(
                 x.get("cpu", 0) / max(1, x["tokens"]) for x in a), 4),
             "median_decode_seconds": round(statistics.median(x["decode"] for x in a), 3),
             "median_tokens": statistics.median(x["tokens"] for x in a)}
        if k:
            drafted = sum(x["drafted"] for x in a)
            accepted = sum(x["accepted"] for x in a)
            s["acceptance"] = round(accepted / drafted, 3) if drafted else None
            s["drafted_share_of_output"] = round(accepted / max(1, sum(x["tokens"] for x in a)),
                                                 3)
            pairs = list(zip(a, plain, strict=True))
            s["identical_to_plain"] = sum(x["sha"] == p["sha"] for x, p in pairs)
            s["mean_shared_prefix_fraction"] = round(statistics.mean(
                x["shared_prefix"] / max(1, p["tokens"]) for x, p in pairs), 3)
            s["wall_ratio_plain_over_lookup_of_medians"] = round(
                statistics.median(p["wall"] for p in plain) / s["median_wall_seconds"], 3)
            s["median_per_prompt_cpu_per_token_ratio"] = round(statistics.median(
                (p.get("cpu", 0) / max(1, p["tokens"])) / max(1e-9, x.get("cpu", 0) / max(
                    1, x["tokens"])) for x, p in pairs), 3)
            s["median_per_prompt_wall_ratio"] = round(statistics.median(
                p["wall"] / x["wall"] for x, p in pairs), 3)
            s["tok_s_ratio_lookup_over_plain_of_medians"] = round(
                s["median_tokens_per_second"] / out["0"]["median_tokens_per_second"], 3)
        out[str(k)] = s
    return out


def run_set(engine: LlamaEngine, items: list[tuple[str, list[prompts.Message]]],
            arms: list[int], max_tokens: int, rows: list[dict], save) -> None:  # noqa: ANN001
    params = SamplingParams(max_tokens=max_tokens)
    for i, (task, messages) in enumerate(items):
        order = arms[i % len(arms):] + arms[: i % len(arms)]
        row: dict = {"task_id": task, "order": order, "arms": {}}
        for k in order:
            engine.lookup_draft = k
            engine.reset_cache()
            start, cpu = time.perf_counter(), time.process_time()
            gen = engine.chat(messages, params)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            row["arms"][str(k)] = {
                "wall": round(wall, 3), "cpu": round(cpu, 3),
                "decode": round(gen.decode_seconds, 3),
                "prompt": round(gen.prompt_seconds, 3), "tokens": gen.completion_tokens,
                "tok_s": round(gen.decode_tokens_per_second, 2), "finish": gen.finish_reason,
                "drafted": gen.drafted_tokens, "accepted": gen.accepted_tokens,
                "sha": hashlib.sha256(gen.text.encode()).hexdigest()[:12],
                "token_ids": gen.tokens, "text": gen.text}
        engine.lookup_draft = 0
        base = row["arms"]["0"]["token_ids"]
        # what benchmarks/lookup_sim.py replays other draft policies on (outputs are identical)
        row["prompt_ids"] = engine.tokenize(engine.info.render_chat(messages), special=True)
        row["plain_ids"] = base
        for k in arms:
            row["arms"][str(k)]["shared_prefix"] = shared_prefix(base,
                                                                 row["arms"][str(k)]["token_ids"])
        for k in arms:
            del row["arms"][str(k)]["token_ids"]
        rows.append(row)
        save()
        print(task, {k: (v["wall"], v["cpu"], v["tokens"], v["tok_s"], v["accepted"],
                         v["shared_prefix"])
                     for k, v in row["arms"].items()}, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="qwen2.5-coder-1.5b,qwen2.5-coder-0.5b")
    ap.add_argument("--sets", default="repair,direct")
    ap.add_argument("--skip", type=int, default=0, help="leave out the first SKIP prompts")
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--k", default="15", help="draft lengths to compare with plain, e.g. 7,15")
    ap.add_argument("--ngram", default="", help="MAX_N,MIN_N of the drafter's matches "
                    "(default: plancode.engine.lookup's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "lookup-ab.json")
    args = ap.parse_args()
    arms = [0] + [int(k) for k in args.k.split(",")]
    makers = {"repair": repair_prompts, "direct": direct_prompts}
    sets = {name: makers[name](args.skip + args.n)[args.skip:] for name in args.sets.split(",")}
    result: dict = {"cpu": cpu_name(), "threads": args.threads, "max_tokens": args.max_tokens,
                    "arms": arms, "command": " ".join(sys.argv), "models": {}}

    def save() -> None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")

    store = ModelStore(progress=False)
    for model in args.models.split(","):
        engine = LlamaEngine(store.resolve(model), n_threads=args.threads, n_ctx=4096)
        engine.lookup_always = True  # both sets, whatever the pipeline asks for
        if args.ngram:
            max_n, min_n = (int(x) for x in args.ngram.split(","))
            engine.lookup_ngram = (max_n, min_n)
        result["ngram"] = list(engine.lookup_ngram)
        entry: dict = {"loadavg_before": Path("/proc/loadavg").read_text().split()[:3]}
        result["models"][model] = entry
        entry["batch_decode_seconds"] = batch_costs(engine)
        print(model, "batch decode seconds", entry["batch_decode_seconds"], flush=True)
        for name, items in sets.items():
            rows: list[dict] = []
            entry[name] = {"rows": rows}
            run_set(engine, items, arms, args.max_tokens, rows, save)
            entry[name]["summary"] = summarise(rows, arms)
            print(model, name, json.dumps(entry[name]["summary"]), flush=True)
            save()
        entry["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
        save()
        del engine
    return 0


if __name__ == "__main__":
    sys.exit(main())
