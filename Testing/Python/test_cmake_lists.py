"""The Slicer extension's CMake lists name every script and resource that exists, and nothing that does not.

CMake lists files explicitly (no globbing), so a new .py or resource must be added; this test fails and prints
the exact lines to add or remove, and ``python Testing/Python/test_cmake_lists.py --fix`` rewrites the library's
lists (MammoDNNLib/CMakeLists.txt) from the files present.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IGNORED_NAMES = {"CMakeLists.txt", ".DS_Store", ".gitignore", ".gitattributes"}


def cmake_list(path: Path, variable: str) -> list[str]:
    """The items of ``set(<variable> ...)`` in a CMake file (``${MODULE_NAME}`` expanded)."""
    text = path.read_text(encoding="utf-8")
    module_name = re.search(r"set\(MODULE_NAME\s+(\S+?)\)", text)
    match = re.search(rf"set\({re.escape(variable)}\s+(.*?)\)", text, flags=re.DOTALL)
    if match is None:
        raise AssertionError(f"{path}: no set({variable} ...)")
    items = []
    for line in match.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        for item in line.split():
            if module_name:
                item = item.replace("${MODULE_NAME}", module_name.group(1))
            items.append(item)
    return items


def files_under(root: Path, *, python: bool | None, exclude_dirs: tuple[str, ...] = ()) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or path.name in IGNORED_NAMES or path.suffix == ".pyc":
            continue
        if any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
            continue
        if relative.parts and relative.parts[0] in exclude_dirs:
            continue
        if python is not None and (path.suffix == ".py") != python:
            continue
        found.append(relative.as_posix())
    return found


def _compare(
    listed: list[str], present: list[str], where: str, variable: str, *, scripts: bool = False
) -> None:
    # Slicer accepts scripts with or without ".py" (DICOMLib lists "DICOMUtils"); resources are exact.
    listed_set = {item + ".py" if scripts and not item.endswith(".py") else item for item in listed}
    missing = sorted(set(present) - listed_set)
    stale = sorted(listed_set - set(present))
    duplicates = sorted({i for i in listed if listed.count(i) > 1})
    message = []
    if missing:
        message.append(f"add to set({variable} ...) in {where}:\n" + "\n".join(f"  {m}" for m in missing))
    if stale:
        message.append(
            f"remove from set({variable} ...) in {where} (no such file):\n"
            + "\n".join(f"  {s}" for s in stale)
        )
    if duplicates:
        message.append(f"listed twice in {where}: {duplicates}")
    assert not message, "\n".join(message)


def test_library_scripts_are_all_listed():
    cmake = REPO / "MammoDNNLib" / "CMakeLists.txt"
    _compare(
        cmake_list(cmake, "MammoDNNLib_PYTHON_SCRIPTS"),
        files_under(REPO / "MammoDNNLib", python=True),
        "MammoDNNLib/CMakeLists.txt",
        "MammoDNNLib_PYTHON_SCRIPTS",
        scripts=True,
    )


def test_library_data_files_are_all_listed():
    cmake = REPO / "MammoDNNLib" / "CMakeLists.txt"
    _compare(
        cmake_list(cmake, "MammoDNNLib_PYTHON_RESOURCES"),
        files_under(REPO / "MammoDNNLib", python=False),
        "MammoDNNLib/CMakeLists.txt",
        "MammoDNNLib_PYTHON_RESOURCES",
    )


def test_extension_resources_are_all_listed():
    cmake = REPO / "MammoDNNLib" / "CMakeLists.txt"
    _compare(
        cmake_list(cmake, "MammoDNNLib_EXTENSION_RESOURCES"),
        files_under(REPO / "Resources", python=None),
        "MammoDNNLib/CMakeLists.txt",
        "MammoDNNLib_EXTENSION_RESOURCES",
    )


def test_module_scripts_and_resources_are_all_listed():
    cmake = REPO / "MammoDNN" / "CMakeLists.txt"
    module = REPO / "MammoDNN"
    _compare(
        cmake_list(cmake, "MODULE_PYTHON_SCRIPTS"),
        files_under(module, python=True, exclude_dirs=("Testing", "Resources")),
        "MammoDNN/CMakeLists.txt",
        "MODULE_PYTHON_SCRIPTS",
        scripts=True,
    )
    _compare(
        cmake_list(cmake, "MODULE_PYTHON_RESOURCES"),
        ["Resources/" + f for f in files_under(module / "Resources", python=None)],
        "MammoDNN/CMakeLists.txt",
        "MODULE_PYTHON_RESOURCES",
    )


def test_top_level_cmake_is_a_slicer_extension():
    text = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    for required in (
        "find_package(Slicer REQUIRED)",
        "include(${Slicer_USE_FILE})",
        "add_subdirectory(MammoDNNLib)",
        "add_subdirectory(MammoDNN)",
        "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
        "include(${Slicer_EXTENSION_CPACK})",
    ):
        assert required in text, required
    for variable in (
        "EXTENSION_HOMEPAGE",
        "EXTENSION_CATEGORY",
        "EXTENSION_CONTRIBUTORS",
        "EXTENSION_DESCRIPTION",
        "EXTENSION_ICONURL",
        "EXTENSION_SCREENSHOTURLS",
        "EXTENSION_DEPENDS",
    ):
        assert re.search(rf'set\({variable} "[^"]+"\)', text), variable
    assert re.search(r'set\(EXTENSION_DEPENDS "PyTorch"\)', text)
    library = (REPO / "MammoDNNLib" / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "WITH_SUBDIR" in library and "slicerMacroBuildScriptedModule(" in library


@pytest.mark.parametrize("variable", ["MammoDNNLib_PYTHON_SCRIPTS", "MammoDNNLib_EXTENSION_RESOURCES"])
def test_the_checker_reads_what_cmake_would(variable):
    items = cmake_list(REPO / "MammoDNNLib" / "CMakeLists.txt", variable)
    assert items and all(" " not in i and not i.startswith("$") for i in items)


def _library_lists() -> dict[str, list[str]]:
    library = REPO / "MammoDNNLib"
    return {
        "MammoDNNLib_PYTHON_SCRIPTS": files_under(library, python=True),
        "MammoDNNLib_PYTHON_RESOURCES": files_under(library, python=False),
        "MammoDNNLib_EXTENSION_RESOURCES": files_under(REPO / "Resources", python=None),
    }


def current_blocks() -> dict[str, str]:
    """The ``set(...)`` blocks of MammoDNNLib/CMakeLists.txt for the tree as it is now."""
    return {
        name: f"set({name}\n" + "".join(f"  {item}\n" for item in items) + "  )"
        for name, items in _library_lists().items()
    }


def fix_library_lists() -> None:
    """Rewrite the library's ``set(...)`` lists in MammoDNNLib/CMakeLists.txt from the files present."""
    cmake = REPO / "MammoDNNLib" / "CMakeLists.txt"
    text = cmake.read_text(encoding="utf-8")
    for name, block in current_blocks().items():
        text, count = re.subn(rf"set\({re.escape(name)}\s+.*?\n  \)", lambda _: block, text, flags=re.DOTALL)
        if count != 1:
            raise SystemExit(f"{cmake}: expected one set({name} ...), found {count}")
    cmake.write_text(text, encoding="utf-8")


if __name__ == "__main__":  # prints the up-to-date lists; with --fix writes them into MammoDNNLib/CMakeLists.txt
    import sys

    if sys.argv[1:] == ["--fix"]:
        fix_library_lists()
    else:
        print("\n\n".join(current_blocks().values()))
