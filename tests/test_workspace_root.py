"""Where a file's tests live when the project has no marker: pytest's rules, with reasons."""

from __future__ import annotations

from pathlib import Path

from plancode.testing.discovery import discover
from plancode.testing.workspace import infer_root


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def found(root: Path, file: Path, name: str) -> list[str]:
    return [t.id for t in discover(root, file, name)]


def test_package_next_to_tests_without_markers(tmp_path: Path) -> None:
    write(tmp_path, {
        "proj/shop/__init__.py": "",
        "proj/shop/textutil.py": "def slugify(text):\n    '''Slug.'''\n",
        "proj/tests/test_visible.py": "from shop.textutil import slugify\n\n"
                                      "def test_slugify():\n    assert slugify('A') == 'a'\n",
    })
    file = tmp_path / "proj/shop/textutil.py"
    where = infer_root(file)
    assert where.path == tmp_path / "proj" and where.reason == "import-root"
    assert "shop/" in where.detail
    assert found(where.path, file, "slugify") == ["tests/test_visible.py::test_slugify"]


def test_nested_package_uses_the_topmost_package(tmp_path: Path) -> None:
    write(tmp_path, {"p/a/__init__.py": "", "p/a/b/__init__.py": "",
                     "p/a/b/m.py": "def f(): pass\n"})
    assert infer_root(tmp_path / "p/a/b/m.py").path == tmp_path / "p"


def test_src_layout_without_markers(tmp_path: Path) -> None:
    write(tmp_path, {
        "proj/src/pkg/__init__.py": "",
        "proj/src/pkg/mod.py": "def parse(x):\n    '''Parse.'''\n",
        "proj/tests/test_mod.py": "from pkg.mod import parse\n\n"
                                  "def test_parse():\n    assert parse('1') == 1\n",
    })
    file = tmp_path / "proj/src/pkg/mod.py"
    where = infer_root(file)
    assert where.path == tmp_path / "proj" and where.reason == "import-root"
    assert found(where.path, file, "parse") == ["tests/test_mod.py::test_parse"]


def test_single_module_next_to_its_test(tmp_path: Path) -> None:
    write(tmp_path, {
        "scripts/calc.py": "def add(a, b):\n    '''Add.'''\n",
        "scripts/test_calc.py": "from calc import add\n\n"
                                "def test_add():\n    assert add(1, 2) == 3\n",
    })
    file = tmp_path / "scripts/calc.py"
    where = infer_root(file)
    assert where.path == tmp_path / "scripts" and where.reason == "file-folder"
    assert found(where.path, file, "add") == ["test_calc.py::test_add"]


def test_loose_module_uses_the_cwd_or_the_editor_folder(tmp_path: Path) -> None:
    write(tmp_path, {
        "proj/tools/calc.py": "def add(a, b):\n    '''Add.'''\n",
        "proj/tests/test_calc.py": "from tools.calc import add\n\n"
                                   "def test_add():\n    assert add(1, 2) == 3\n",
    })
    file = tmp_path / "proj/tools/calc.py"
    by_cwd = infer_root(file, cwd=tmp_path / "proj")
    assert by_cwd.path == tmp_path / "proj" and by_cwd.reason == "cwd"
    assert found(by_cwd.path, file, "add") == ["tests/test_calc.py::test_add"]
    by_folder = infer_root(file, folders=[tmp_path, tmp_path / "proj"], cwd=Path("/"))
    assert by_folder.path == tmp_path / "proj" and by_folder.reason == "workspace-folder"
    # a cwd far above the file (the home folder) is not taken as the project
    assert infer_root(file, cwd=Path("/")).reason == "file-folder"


def test_a_marker_wins_and_a_given_root_wins_over_everything(tmp_path: Path) -> None:
    write(tmp_path, {"proj/pyproject.toml": "", "proj/lib/pkg/__init__.py": "",
                     "proj/lib/pkg/m.py": "def f(): pass\n"})
    file = tmp_path / "proj/lib/pkg/m.py"
    where = infer_root(file)
    assert where.path == tmp_path / "proj" and where.reason == "marker"
    assert "pyproject.toml" in where.detail
    assert infer_root(file, given=tmp_path).reason == "given"
    assert where.to_json()["path"] == str(tmp_path / "proj")
