"""Ship a distillation run's adapter as the ``plancode-student-0.5b`` catalog model.

``python -m plancode.trainer.ship --config configs/distill-real.toml``

Copies ``out_dir/export/<name>.lora.gguf`` into ``server/models/adapters/`` (package data) and
writes its size and sha256 into ``STUDENT_ADAPTER`` in ``server/models/catalog.py``, so the
store verifies it like every other catalog file. Refuses an adapter made for another base
than the catalog's 0.5B file (the pins of that file must match the base named in the export
report), because llama.cpp would apply it to the wrong weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

from plancode.errors import PlancodeError
from plancode.models import catalog
from plancode.models.store import shipped_adapters_dir

CATALOG_FILE = Path(catalog.__file__)
_PIN = re.compile(r'STUDENT_ADAPTER = ShippedAdapter\([^)]*\)')


def ship(export_dir: Path, name: str = "plancode-student") -> tuple[Path, int, str]:
    """Install the exported adapter and pin it; returns (shipped path, size, sha256)."""
    report_path = export_dir / "export_report.json"
    if not report_path.is_file():
        raise PlancodeError(f"no export report in {export_dir}",
                            "run the export stage first (plancode distill --stage export)")
    report = json.loads(report_path.read_text())
    adapter = report.get("adapter")
    if not adapter:
        raise PlancodeError("the export wrote no GGUF adapter", "set export.adapter = true")
    if adapter["base"] != catalog.QWEN_05B_FILE:
        raise PlancodeError(f"the adapter was made for {adapter['base']}, not the catalog's "
                            f"{catalog.QWEN_05B_FILE}", "train from train.student = "
                            "'qwen2.5-coder-0.5b'")
    source = export_dir / adapter["file"]
    data = source.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if sha != adapter["sha256"]:
        raise PlancodeError(f"{source} changed since the export (sha256 {sha[:12]}…)",
                            "re-run the export stage")
    target = shipped_adapters_dir() / catalog.STUDENT_ADAPTER.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    text = CATALOG_FILE.read_text()
    # wrapped so the catalog stays within the project's line length (ruff)
    pinned = (f'STUDENT_ADAPTER = ShippedAdapter(\n    "{catalog.STUDENT_ADAPTER.filename}", '
              f'{len(data)},\n    "{sha}")')
    if not _PIN.search(text):
        raise PlancodeError(f"no STUDENT_ADAPTER line in {CATALOG_FILE}", "restore it")
    CATALOG_FILE.write_text(_PIN.sub(pinned, text, count=1))
    return target, len(data), sha


def main(argv: list[str] | None = None) -> int:
    from plancode.trainer.config import DistillConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    args = ap.parse_args(argv)
    try:
        cfg = DistillConfig.load(Path(args.config))
        path, size, sha = ship(cfg.out_dir / "export", cfg.export.name)
    except PlancodeError as exc:
        print(f"error: {exc.message}\nfix: {exc.fix}", file=sys.stderr)
        return 2
    print(f"shipped {path} ({size} bytes, sha256 {sha}); commit it with "
          f"server/models/catalog.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
