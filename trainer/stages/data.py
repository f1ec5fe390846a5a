"""The data stage: load, mine, deduplicate, decontaminate and split the problems; and the
readers every later stage uses to get them back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from plancode.trainer import blobs
from plancode.trainer.config import DistillConfig
from plancode.trainer.data import Problem, dedupe, load_jsonl, python_problem, split
from plancode.trainer.stages.stage import open_stage


def read_problems(path: Path, split_name: str | None = None,
                  roots: list[str] | None = None) -> tuple[list[Problem], list[Problem]]:
    """(train, validation) problems of a data stage's ``problems.jsonl``; with ``split_name``,
    only that split's problems as the first list. Mined problems' roots are re-pointed at the
    config's ``roots`` of the same folder name, so a moved run finds its codebases."""
    blobs.ensure(path)
    by_name = {Path(r).name: r for r in roots or []}
    train, val = [], []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        meta = row["meta"]
        if "root" in meta and Path(meta["root"]).name in by_name:
            meta = {**meta, "root": by_name[Path(meta["root"]).name]}
        p = Problem(row["id"], row["problem"], row["solution"], tuple(row["tests"]),
                    row["source"], meta)
        if split_name is not None:
            if row["split"] == split_name:
                train.append(p)
        elif row["split"] == "val":
            val.append(p)
        elif row["split"] == "train":
            train.append(p)
    return train, val


def problems_of(cfg: DistillConfig) -> tuple[list[Problem], list[Problem]]:
    """(train, validation) problems written by the data stage."""
    return read_problems(cfg.out_dir / "data" / "problems.jsonl", roots=cfg.data.mine)


def heldout_of(cfg: DistillConfig) -> list[Problem]:
    """The held-out mined problems: never planned, never trained on (evaluation only)."""
    return read_problems(cfg.out_dir / "data" / "problems.jsonl", "heldout", cfg.data.mine)[0]


def heldout_split(problems: list[Problem], fraction: float,
                  seed: int) -> tuple[list[Problem], list[Problem]]:
    """(kept, held out): whole mined *files* are held out (a function's neighbours share its
    helpers and style, so holding out single functions would leak), chosen by a hash of the
    codebase folder name and file path; standalone problems by their id."""
    if fraction <= 0:
        return problems, []
    kept, held = [], []
    for p in problems:
        group = (f"{Path(str(p.meta['root'])).name}/{p.meta['file']}" if "root" in p.meta
                 else p.id)
        digest = hashlib.sha256(f"{seed}\0{group}".encode()).digest()
        (held if int.from_bytes(digest[:8], "big") / 2**64 < fraction else kept).append(p)
    return kept, held


def stage_data(cfg: DistillConfig, progress: bool) -> dict:
    """Load, mine, normalise, deduplicate, decontaminate and split the problems."""
    from plancode.trainer.mine import mine

    stage, done = open_stage(cfg, "data")
    if done is not None:
        return done
    problems: list[Problem] = []
    report: dict = {"sources": {}}
    for path in cfg.data.jsonl:
        rows = [python_problem(p) for p in load_jsonl(Path(path))]
        report["sources"][path] = len(rows)
        problems += rows
    for root in cfg.data.mine:
        mined, mreport = mine(Path(root), progress=progress)
        report["sources"][root] = len(mined)
        report.setdefault("mined", {})[root] = mreport.to_json()
        problems += mined
    problems, dropped = dedupe(problems)
    report["duplicates"] = [p.id for p in dropped]
    if cfg.data.max_chars:
        long = [p for p in problems if len(p.problem) + len(p.solution) > cfg.data.max_chars]
        problems = [p for p in problems if len(p.problem) + len(p.solution) <= cfg.data.max_chars]
        report["too_long"] = [p.id for p in long]
    if cfg.data.decontaminate:
        from plancode.trainer.decontam import Decontaminator

        problems, decontam = Decontaminator().decontaminate(problems)
        report["decontamination"] = decontam.to_json()
        report["contaminated"] = report["decontamination"].pop("contaminated")
    if cfg.data.max_problems:
        problems = sorted(problems, key=lambda p: p.id)[: cfg.data.max_problems]
    problems, heldout = heldout_split(problems, cfg.data.heldout_fraction, cfg.data.seed)
    train, val = split(problems, cfg.data.val_fraction, cfg.data.seed)
    with (stage.dir / "problems.jsonl").open("w") as fh:
        for name, part in (("train", train), ("val", val), ("heldout", heldout)):
            for p in part:
                fh.write(json.dumps({**p.to_json(), "split": name}) + "\n")
    report.update(train=len(train), val=len(val), heldout=len(heldout),
                  by_source=_by_source(train, val, heldout))
    return stage.finish(report)


def _by_source(train: list[Problem], val: list[Problem], heldout: list[Problem]) -> dict:
    """Problem counts per source (mined codebase folder or JSONL source) and split."""
    out: dict[str, dict[str, int]] = {}
    for name, part in (("train", train), ("val", val), ("heldout", heldout)):
        for p in part:
            src = Path(str(p.meta["root"])).name if "root" in p.meta else p.source
            row = out.setdefault(src, {"train": 0, "val": 0, "heldout": 0})
            row[name] += 1
    return out
