"""``python -m plancode.trainer.ship``: a run's exported adapter becomes package data, pinned in the
catalog by size and sha256 (written into a copy of catalog.py here, not the real one)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from plancode.errors import PlancodeError
from plancode.models import catalog
from plancode.trainer import ship


@pytest.fixture
def export_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    data = b"GGUF" + bytes(range(256)) * 4
    (folder / "plancode-student.lora.gguf").write_bytes(data)
    (folder / "export_report.json").write_text(json.dumps({"adapter": {
        "file": "plancode-student.lora.gguf", "sha256": hashlib.sha256(data).hexdigest(),
        "base": catalog.QWEN_05B_FILE, "bytes": len(data)}}))
    fake_catalog = tmp_path / "catalog.py"
    shutil.copy(catalog.__file__, fake_catalog)
    monkeypatch.setattr(ship, "CATALOG_FILE", fake_catalog)
    monkeypatch.setattr(ship, "shipped_adapters_dir", lambda: tmp_path / "adapters")
    return folder


def test_ship_copies_the_adapter_and_pins_it(export_dir: Path, tmp_path: Path) -> None:
    path, size, sha = ship.ship(export_dir)
    assert path == tmp_path / "adapters" / catalog.STUDENT_ADAPTER.filename
    assert path.read_bytes() == (export_dir / "plancode-student.lora.gguf").read_bytes()
    text = (tmp_path / "catalog.py").read_text()
    assert (f'ShippedAdapter(\n    "{catalog.STUDENT_ADAPTER.filename}", {size},\n'
            f'    "{sha}")') in text
    namespace: dict = {}
    exec(compile(text, "catalog.py", "exec"), namespace)  # still valid Python, now released
    assert namespace["STUDENT_ADAPTER"].released
    assert namespace["CATALOG"]["plancode-student-0.5b"].adapter.sha256 == sha


def test_ship_refuses_an_adapter_for_another_base(export_dir: Path) -> None:
    report = json.loads((export_dir / "export_report.json").read_text())
    report["adapter"]["base"] = "some-other-model.gguf"
    (export_dir / "export_report.json").write_text(json.dumps(report))
    with pytest.raises(PlancodeError) as err:
        ship.ship(export_dir)
    assert "some-other-model.gguf" in err.value.message and err.value.fix


def test_ship_refuses_a_changed_adapter(export_dir: Path) -> None:
    (export_dir / "plancode-student.lora.gguf").write_bytes(b"GGUF tampered")
    with pytest.raises(PlancodeError) as err:
        ship.ship(export_dir)
    assert "changed since the export" in err.value.message
