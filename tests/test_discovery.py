"""Test discovery on realistic workspaces built in a temporary directory, checked against what
pytest itself collects there (ids must be runnable as given), and on the textstats example."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plancode.testing.discovery import WorkspaceIndex, discover, doctests_for, module_name
from plancode.testing.types import TestCase

REPO = Path(__file__).resolve().parent.parent
TEXTSTATS = REPO / "examples" / "textstats"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


def collected(root: Path, *args: str) -> set[str]:
    """Node ids pytest collects in ``root`` with --doctest-modules (the sandbox's view)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "--doctest-modules",
         "-p", "no:cacheprovider", f"--rootdir={root}", *(args or (".",))],
        cwd=root, capture_output=True, text=True, encoding="utf-8", timeout=120, env=env,
    )
    return {line.strip() for line in proc.stdout.splitlines() if "::" in line}


def assert_collectable(tests: list[TestCase], ids: set[str]) -> None:
    """Every id is collected by pytest (parametrized ones as ``id[...]``)."""
    for test in tests:
        assert test.id in ids or any(i.startswith(test.id + "[") for i in ids), (test.id, ids)


def ids(tests: list[TestCase]) -> list[str]:
    return [t.id for t in tests]


MOD = '''
"""A module under test."""


def f(x):
    """Double x.

    >>> f(2)
    4
    """
    return 2 * x


def g(x):
    """No examples here."""
    return x


def outer():
    def inner():
        """
        >>> 1
        1
        """
    return inner


class Box:
    def __init__(self):
        self.closed = False

    def close(self):
        """Close the box.

        >>> Box().close()
        True
        """
        self.closed = True
        return True

    def open(self):
        self.closed = False

    @property
    def size(self):
        return 1

    class Lid:
        def fit(self):
            """
            >>> Box.Lid().fit()
            'ok'
            """
            return "ok"
'''

OTHER = '''
def f(x):
    return x


class Box:
    def close(self):
        return False
'''

BASIC = {
    "pkg/__init__.py": "",
    "pkg/mod.py": MOD,
    "pkg/other.py": OTHER,
    "tests/test_from_import.py": """
        from pkg.mod import f


        def test_f_from():
            assert f(2) == 4


        def test_unrelated():
            assert True
        """,
    "tests/test_alias.py": """
        import pytest

        from pkg.mod import f as double


        @pytest.mark.parametrize("x", [1, 2])
        def test_alias(x):
            assert double(x) == 2 * x
        """,
    "tests/test_module_alias.py": """
        import pkg.mod as m


        def test_module_alias():
            assert m.f(1) == 2
        """,
    "tests/test_dotted.py": """
        import pkg.mod


        def test_dotted():
            assert pkg.mod.f(3) == 6
        """,
    "tests/test_from_pkg.py": """
        from pkg import mod


        async def test_async_from_pkg():
            assert mod.f(0) == 0


        def test_local_import():
            from pkg.mod import f as local_f
            assert list(map(local_f, [1])) == [2]
        """,
    "tests/test_other.py": """
        from pkg.other import f


        def test_other_f():
            assert f(1) == 1
        """,
    "tests/test_box.py": """
        from pkg import other
        from pkg.mod import Box


        def test_close():
            b = Box()
            b.close()
            assert b.closed


        def test_close_chained():
            assert Box().close()


        def test_open():
            Box().open()


        def test_other_box_close():
            assert other.Box().close() is False


        class TestBox:
            def test_size(self):
                assert Box().size == 1

            def test_via_fixture(self, box):
                box.close()

            def test_via_helper(self):
                assert make_and_close()


        def make_and_close():
            return Box().close()
        """,
    "tests/conftest.py": """
        import pytest

        from pkg.mod import Box


        @pytest.fixture
        def box():
            return Box()
        """,
    "tests/test_unittest.py": """
        import unittest

        from pkg.mod import Box, f


        class DoubleChecks(unittest.TestCase):
            def setUp(self):
                self.box = Box()

            def test_double(self):
                self.assertEqual(f(2), 4)

            def test_box_closes(self):
                self.assertTrue(self.box.close())

            def helper(self):
                return 1
        """,
}


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorkspaceIndex, set[str]]:
    root = write(tmp_path_factory.mktemp("basic"), BASIC)
    index = WorkspaceIndex(root)
    index.refresh()
    return root, index, collected(root)


def test_function_found_through_every_import_form(basic):
    root, index, pytest_ids = basic
    found = index.tests_for(root / "pkg/mod.py", "f")
    assert ids(found) == [
        "tests/test_alias.py::test_alias",
        "tests/test_dotted.py::test_dotted",
        "tests/test_from_import.py::test_f_from",
        "tests/test_from_pkg.py::test_async_from_pkg",
        "tests/test_from_pkg.py::test_local_import",
        "tests/test_module_alias.py::test_module_alias",
        "tests/test_unittest.py::DoubleChecks::test_double",
    ]
    assert all(t.kind == "pytest" for t in found[:-1])
    assert found[-1] == TestCase("tests/test_unittest.py::DoubleChecks::test_double",
                                 "unittest", "tests/test_unittest.py", "DoubleChecks.test_double")
    assert_collectable(found, pytest_ids)


def test_same_name_from_another_module_is_not_matched(basic):
    root, index, pytest_ids = basic
    assert ids(index.tests_for(root / "pkg/other.py", "f")) == ["tests/test_other.py::test_other_f"]
    assert ids(index.tests_for(root / "pkg/mod.py", "g")) == []
    assert ids(index.tests_for(root / "pkg/other.py", "Box.close")) == [
        "tests/test_box.py::test_other_box_close"]


def test_methods_need_the_class_and_the_method_name(basic):
    root, index, pytest_ids = basic
    found = index.tests_for(root / "pkg/mod.py", "Box.close")
    assert ids(found) == [
        "tests/test_box.py::test_close",
        "tests/test_box.py::test_close_chained",
        "tests/test_box.py::TestBox::test_via_fixture",  # conftest fixture returns Box()
        "tests/test_box.py::TestBox::test_via_helper",  # module helper calls Box().close()
        "tests/test_unittest.py::DoubleChecks::test_box_closes",  # Box() made in setUp
    ]
    assert found[-1].kind == "unittest"
    assert_collectable(found, pytest_ids)
    assert ids(index.tests_for(root / "pkg/mod.py", "Box.open")) == [
        "tests/test_box.py::test_open"]
    assert ids(index.tests_for(root / "pkg/mod.py", "Box.size")) == [
        "tests/test_box.py::TestBox::test_size"]
    # __init__ runs whenever the class is instantiated
    init = ids(index.tests_for(root / "pkg/mod.py", "Box.__init__"))
    assert "tests/test_box.py::test_open" in init
    assert "tests/test_box.py::test_other_box_close" not in init


def test_nested_function_uses_the_tests_of_its_outer_function(tmp_path):
    root = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/mod.py": MOD,
        "tests/test_outer.py": "from pkg.mod import outer\n\ndef test_outer():\n    outer()\n",
    })
    index = WorkspaceIndex(root)
    assert ids(index.tests_for(root / "pkg/mod.py", "outer.inner")) == [
        "tests/test_outer.py::test_outer"]
    assert doctests_for(root, root / "pkg/mod.py", "outer.inner") == []


def test_doctest_ids_are_the_ones_pytest_collects(basic):
    root, index, pytest_ids = basic
    mod = root / "pkg/mod.py"
    assert doctests_for(root, mod, "f") == [
        TestCase("pkg/mod.py::pkg.mod.f", "doctest", "pkg/mod.py", "f (doctest)")]
    method = doctests_for(root, mod, "Box.close")
    nested = doctests_for(root, mod, "Box.Lid.fit")
    assert ids(method) == ["pkg/mod.py::pkg.mod.Box.close"]
    assert ids(nested) == ["pkg/mod.py::pkg.mod.Box.Lid.fit"]
    assert doctests_for(root, mod, "g") == []
    assert doctests_for(root, mod, "missing") == []
    doctest_ids = {i for i in pytest_ids if i.startswith("pkg/")}
    assert doctest_ids == {"pkg/mod.py::pkg.mod.f", "pkg/mod.py::pkg.mod.Box.close",
                           "pkg/mod.py::pkg.mod.Box.Lid.fit"}
    # unsaved editor text wins over the file on disk
    edited = MOD.replace(">>> f(2)\n    4\n", "")
    assert doctests_for(root, mod, "f", source=edited) == []


def test_discover_puts_doctests_first_without_duplicates(basic):
    root, index, pytest_ids = basic
    found = discover(root, root / "pkg/mod.py", "f", index)
    assert found[0].kind == "doctest"
    assert ids(found)[1:] == ids(index.tests_for(root / "pkg/mod.py", "f"))
    assert len(set(ids(found))) == len(found)
    assert ids(discover(root, Path("pkg/mod.py"), "f")) == ids(found)  # no index, relative path
    assert_collectable(found, pytest_ids)


def test_module_name(tmp_path):
    root = write(tmp_path, {
        "pkg/__init__.py": "", "pkg/sub/__init__.py": "", "pkg/sub/mod.py": "",
        "src/lib/__init__.py": "", "src/lib/core.py": "", "top.py": "",
        "scripts/tool.py": "", "my-scripts/tool.py": "", "notes.txt": "",
    })
    assert module_name(root, root / "pkg/sub/mod.py") == "pkg.sub.mod"
    assert module_name(root, root / "pkg/__init__.py") == "pkg"
    assert module_name(root, root / "src/lib/core.py") == "lib.core"
    assert module_name(root, root / "top.py") == "top"
    assert module_name(root, root / "scripts/tool.py") == "scripts.tool"  # namespace package
    assert module_name(root, root / "my-scripts/tool.py") is None
    assert module_name(root, root / "notes.txt") is None
    assert module_name(root / "pkg", root / "top.py") is None  # outside the root


def test_src_layout(tmp_path):
    root = write(tmp_path, {
        "pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["src"]\n',
        "src/lib/__init__.py": "",
        "src/lib/core.py": '''
            def parse(text):
                """Split on commas.

                >>> parse("a,b")
                ['a', 'b']
                """
                return text.split(",")
            ''',
        "tests/test_core.py": """
            from lib.core import parse


            def test_parse():
                assert parse("a") == ["a"]
            """,
    })
    found = discover(root, root / "src/lib/core.py", "parse")
    assert ids(found) == ["src/lib/core.py::lib.core.parse", "tests/test_core.py::test_parse"]
    assert_collectable(found, collected(root))


def test_type_checker_cases_are_not_tests_of_the_function(tmp_path):
    """pydash's pattern: pytest-mypy-testing cases call the function inside ``reveal_type``,
    which fails at run time whatever the code; they would make every candidate fail."""
    root = write(tmp_path, {
        "lib.py": "def chunk(items, size):\n    return [items[i:i + size] for i in "
                  "range(0, len(items), size)]\n",
        "tests/test_lib.py": """
            from lib import chunk


            def test_chunk():
                assert chunk([1, 2, 3], 2) == [[1, 2], [3]]
            """,
        "tests/test_typing.py": """
            import pytest

            from lib import chunk


            @pytest.mark.mypy_testing
            def test_mypy_chunk():
                reveal_type(chunk([1], 1))  # R: builtins.list[builtins.list[builtins.int]]
            """,
    })
    assert ids(discover(root, root / "lib.py", "chunk")) == ["tests/test_lib.py::test_chunk"]


def test_relative_imports_and_reexports(tmp_path):
    root = write(tmp_path, {
        "proj/__init__.py": "from .pkg import f\n",
        "proj/pkg/__init__.py": "from .mod import *\n",
        "proj/pkg/mod.py": "def f(x):\n    return x\n\n\ndef _private(x):\n    return x\n",
        "proj/tests/__init__.py": "",
        "proj/tests/test_rel.py": """
            from ..pkg.mod import f
            from ..pkg import mod as m
            from .. import f as top_f


            def test_relative():
                assert f(1) == 1


            def test_relative_module():
                assert m.f(2) == 2


            def test_reexported():
                assert top_f(3) == 3
            """,
        "proj/tests/test_private.py": """
            from ..pkg import _private, mod


            def test_private_star_is_not_reexported():
                assert mod._private(1) == 1
            """,
    })
    found = WorkspaceIndex(root).tests_for(root / "proj/pkg/mod.py", "f")
    assert ids(found) == ["proj/tests/test_rel.py::test_relative",
                          "proj/tests/test_rel.py::test_relative_module",
                          "proj/tests/test_rel.py::test_reexported"]
    assert_collectable(found, collected(root))
    private = WorkspaceIndex(root).tests_for(root / "proj/pkg/mod.py", "_private")
    assert ids(private) == ["proj/tests/test_private.py::test_private_star_is_not_reexported"]


def test_function_in_the_test_module_itself(tmp_path):
    root = write(tmp_path, {
        "test_inline.py": """
            def slug(text):
                return text.lower()


            def test_slug():
                assert slug("A") == "a"


            def test_other():
                assert True
            """,
        "test_elsewhere.py": """
            def slug(text):
                return text


            def test_own_slug():
                assert slug("A") == "A"
            """,
    })
    found = WorkspaceIndex(root).tests_for(root / "test_inline.py", "slug")
    assert ids(found) == ["test_inline.py::test_slug"]
    assert_collectable(found, collected(root))


def test_test_classes_unittest_and_inheritance(tmp_path):
    root = write(tmp_path, {
        "calc.py": "def add(a, b):\n    return a + b\n",
        "tests/test_calc.py": """
            import unittest
            from unittest import TestCase as Base

            import pytest

            from calc import add


            class Mixin:
                def test_add_inherited(self):
                    assert add(1, 1) == 2


            class AddCase(Mixin, Base):
                def test_add(self):
                    self.assertEqual(add(1, 2), 3)


            class Plain(unittest.IsolatedAsyncioTestCase):
                async def test_async_add(self):
                    self.assertEqual(add(0, 0), 0)


            class TestAdd:
                @pytest.mark.parametrize("a", [1, 2])
                def test_param(self, a):
                    assert add(a, 0) == a

                class TestNested:
                    def test_nested(self):
                        assert add(2, 2) == 4


            class TestNotCollected:
                def __init__(self):
                    pass

                def test_never(self):
                    add(1, 1)


            class TestAbstract:
                __test__ = False

                def test_abstract(self):
                    add(1, 1)


            class HelperClass:
                def test_not_a_test_class(self):
                    add(1, 1)
            """,
    })
    found = WorkspaceIndex(root).tests_for(root / "calc.py", "add")
    assert [(t.id, t.kind) for t in found] == [
        ("tests/test_calc.py::AddCase::test_add_inherited", "unittest"),
        ("tests/test_calc.py::AddCase::test_add", "unittest"),
        ("tests/test_calc.py::Plain::test_async_add", "unittest"),
        ("tests/test_calc.py::TestAdd::test_param", "pytest"),
        ("tests/test_calc.py::TestAdd::TestNested::test_nested", "pytest"),
    ]
    pytest_ids = collected(root, "tests")
    assert_collectable(found, pytest_ids)
    assert not any("Never" in i or "abstract" in i or "HelperClass" in i for i in pytest_ids)


def test_incremental_refresh(tmp_path):
    root = write(tmp_path, {
        "calc.py": "def add(a, b):\n    return a + b\n",
        "tests/test_a.py": "from calc import add\n\ndef test_a():\n    assert add(1, 1) == 2\n",
        "tests/test_b.py": "def test_b():\n    assert True\n",
        "tests/helpers.py": "VALUE = 1\n",
        ".venv/lib/test_ignored.py": "def test_x():\n    pass\n",
        "node_modules/x/test_ignored.py": "def test_x():\n    pass\n",
        ".hidden/test_ignored.py": "def test_x():\n    pass\n",
    })
    index = WorkspaceIndex(root, test_command="pytest -x")
    index.refresh()
    assert index.parses == 3  # two test files and a helper module under tests/
    report = index.report()
    assert (report["test_files"], report["support_files"], report["tests"]) == (2, 1, 2)
    assert report["parsed"] == 3 and report["test_command"] == "pytest -x"
    assert "parse_seconds" in report

    index.refresh()
    assert index.parses == 3  # nothing changed: nothing parsed

    test_b = root / "tests/test_b.py"
    test_b.write_text("from calc import add\n\ndef test_b():\n    assert add(2, 2) == 4\n",
                      encoding="utf-8")
    stat = test_b.stat()
    os.utime(test_b, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    index.refresh()
    assert index.parses == 4
    assert ids(index.tests_for(root / "calc.py", "add")) == ["tests/test_a.py::test_a",
                                                             "tests/test_b.py::test_b"]

    (root / "tests/test_a.py").unlink()
    write(root, {"tests/test_c.py": "import calc\n\ndef test_c():\n    calc.add(0, 0)\n"})
    index.refresh()
    assert index.parses == 5
    assert ids(index.tests_for(root / "calc.py", "add")) == ["tests/test_b.py::test_b",
                                                             "tests/test_c.py::test_c"]
    assert index.report()["test_files"] == 2


def test_broken_syntax_is_tolerated(tmp_path):
    root = write(tmp_path, {
        "calc.py": "def add(a, b):\n    return a + b\n",
        "tests/test_good.py": "from calc import add\n\ndef test_good():\n    add(1, 2)\n",
        "tests/test_broken.py": """
            from calc import add


            def test_intact():
                assert add(1, 2) == 3


            def test_half_typed(:
                add(
            """,
        "tests/test_garbage.py": "))) def ::: class (((\n\x00\n",
    })
    index = WorkspaceIndex(root)
    index.refresh()
    assert index.report()["files_with_errors"] == ["tests/test_broken.py",
                                                   "tests/test_garbage.py"]
    # pytest cannot import a file with a syntax error, so its tests are left out ...
    assert ids(index.tests_for(root / "calc.py", "add")) == ["tests/test_good.py::test_good"]
    # ... unless asked for; what parses around the error is still indexed
    broken = ids(index.tests_for(root / "calc.py", "add", include_broken=True))
    assert "tests/test_broken.py::test_intact" in broken


def test_unicode_files(tmp_path):
    root = write(tmp_path, {
        "wörter.py": "",
        "text_utils.py": '''
            def shout(text: str) -> str:
                """Upper-case a text — with accents.

                >>> shout("naïve café")
                'NAÏVE CAFÉ'
                """
                return text.upper()
            ''',
        "tests/test_unicode.py": """
            from text_utils import shout


            def test_ñandú():
                assert shout("ñandú 🚀") == "ÑANDÚ 🚀"  # ✓
            """,
    })
    bom = root / "tests/test_bom.py"
    bom.write_bytes(b"\xef\xbb\xbf" + "from text_utils import shout\n\n\ndef test_bom():\n"
                    "    assert shout('é') == 'É'\n".encode())
    found = discover(root, root / "text_utils.py", "shout")
    assert ids(found) == ["text_utils.py::text_utils.shout", "tests/test_bom.py::test_bom",
                          "tests/test_unicode.py::test_ñandú"]
    assert module_name(root, root / "wörter.py") == "wörter"  # PEP 3131 identifier
    assert_collectable(found, collected(root))


def test_pytest_config_python_files(tmp_path):
    root = write(tmp_path, {
        "pytest.ini": "[pytest]\npython_files = check_*.py\npython_functions = check_\n",
        "calc.py": "def add(a, b):\n    return a + b\n",
        "check_calc.py": "from calc import add\n\ndef check_add():\n    add(1, 1)\n",
        "test_calc.py": "from calc import add\n\ndef test_add():\n    add(1, 1)\n",
    })
    found = WorkspaceIndex(root).tests_for(root / "calc.py", "add")
    assert ids(found) == ["check_calc.py::check_add"]
    assert_collectable(found, collected(root))


EXPECTED_TEXTSTATS = {
    ("textstats/words.py", "word_frequencies"): [
        "textstats/words.py::textstats.words.word_frequencies",
        "tests/test_words.py::test_word_frequencies_counts_case_insensitively",
        "tests/test_words.py::test_word_frequencies_ignores_punctuation",
        "tests/test_words.py::test_word_frequencies_empty",
    ],
    ("textstats/words.py", "top_words"): [
        "textstats/words.py::textstats.words.top_words",
        "tests/test_words.py::test_top_words_orders_by_count_then_alphabet",
        "tests/test_words.py::test_top_words_n_larger_than_vocabulary",
    ],
    ("textstats/words.py", "slugify"): [
        "textstats/words.py::textstats.words.slugify",
        "tests/test_words.py::test_slugify",
    ],
    ("textstats/numbers.py", "running_mean"): [
        "textstats/numbers.py::textstats.numbers.running_mean",
        "tests/test_numbers.py::test_running_mean",
        "tests/test_numbers.py::test_running_mean_empty",
    ],
    ("textstats/numbers.py", "median"): [
        "textstats/numbers.py::textstats.numbers.median",
        "tests/test_numbers.py::test_median_odd_and_even",
        "tests/test_numbers.py::test_median_does_not_modify_input",
        "tests/test_numbers.py::test_median_empty_raises",
    ],
    ("textstats/words.py", "count_lines"): [],
}


def test_textstats_example():
    index = WorkspaceIndex(TEXTSTATS)
    index.refresh()
    assert index.report()["tests"] == 11
    pytest_ids = collected(TEXTSTATS, "textstats", "tests")  # testpaths would skip doctests
    for (file, qualname), expected in EXPECTED_TEXTSTATS.items():
        found = discover(TEXTSTATS, TEXTSTATS / file, qualname, index)
        assert ids(found) == expected, qualname
        assert_collectable(found, pytest_ids)
    assert index.parses == 2  # repeated discover() calls re-parse nothing


def test_fixtures_helpers_and_setup_are_followed(tmp_path):
    root = write(tmp_path, {
        "calc.py": "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
        "tests/test_pulled_in.py": """
            import pytest

            import calc


            @pytest.fixture(name="total")
            def _total(base):
                return calc.add(base, 1)


            @pytest.fixture
            def base():
                return 1


            @pytest.fixture(autouse=True)
            def reset():
                calc.sub(0, 0)


            def two_steps():
                return one_step()


            def one_step():
                return calc.add(1, 1)


            def test_renamed_fixture(total):
                assert total == 2


            @pytest.mark.usefixtures("total")
            def test_usefixtures():
                pass


            def test_helper_chain():
                assert two_steps() == 2


            def test_nothing():
                pass


            class TestSetup:
                def setup_method(self):
                    self.value = calc.add(2, 2)

                def test_uses_setup(self):
                    assert self.value == 4
            """,
    })
    index = WorkspaceIndex(root)
    assert ids(index.tests_for(root / "calc.py", "add")) == [
        "tests/test_pulled_in.py::test_renamed_fixture",
        "tests/test_pulled_in.py::test_usefixtures",
        "tests/test_pulled_in.py::test_helper_chain",
        "tests/test_pulled_in.py::TestSetup::test_uses_setup",
    ]
    # an autouse fixture of the file runs before every test in it
    assert len(index.tests_for(root / "calc.py", "sub")) == 5
    assert_collectable(index.tests_for(root / "calc.py", "sub"), collected(root))
