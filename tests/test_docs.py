"""The docs name only what exists: every relative link of README.md and docs/*.md leads to a file of
this checkout (and to a heading of it, with an anchor), and every repo path they name in code (a
`span` or a fenced block: `cni_macvlan/links/parents.py`, `tools/release.py`, `tests/test_install.py`)
exists, as do the tests they name (`test_zygote.py::test_only_root_is_served`,
`test_silent_connections_delay_no_one`).

Nothing to build, no root: run it alone after moving a file (`pytest tests/test_docs.py`);
`python -m tests.test_docs` lists every repo path the docs name, where, and whether it exists.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# made by the build and the tools, never in the repository: a path under them is a place, not a file of ours
MADE = {"dist", "build", "bench-results", ".venv", ".git"}
# a path of this repository starts with one of its top-level entries
TOP = {p.name for p in ROOT.iterdir() if p.name not in MADE and not p.name.startswith(".") and p.name != "__pycache__"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
PATH = re.compile(r"[\w.+-]+(/[\w.+-]*)*")
TEST = re.compile(r"test_\w+")
TESTS = {p.name: p for p in (ROOT / "tests").glob("test_*.py")}


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_\[\]]|\(([^)]*)\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    text = FENCE.sub("", doc.read_text())
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#+\s+(.+)$", text, re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(doc: Path) -> list[tuple[int, str]]:
    """The relative links of ``doc`` (not in code), with their line numbers."""
    out = []
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        for target in LINK.findall(SPAN.sub("", line)):
            if not re.match(r"[a-z]+:", target):
                out.append((number, target))
    return out


def code_words(doc: Path) -> list[tuple[int, str]]:
    """Every word of ``doc``'s code (spans and fenced blocks), with its line number."""
    out = []
    fenced = False
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        for code in [line] if fenced else SPAN.findall(line):
            out += [(number, word.strip("()[]{},;:'\"")) for word in code.split()]
    return out


def named_paths(doc: Path) -> list[tuple[int, str]]:
    """The repo paths ``doc`` names in code: words that start with a top-level entry of the repository
    (`ipam/`, `tools/release.py`, `build.spec`; a bare word only with a dot: `ipam` is a config key),
    or a test module by its name (`test_zygote.py`, `test_zygote.py::test_only_root_is_served`:
    tests/...), with their line numbers."""
    out = []
    for number, word in code_words(doc):
        path, _, test = word.partition("::")
        if path in TESTS or re.fullmatch(r"test_\w+\.py", path):
            path = f"tests/{path}"
        if PATH.fullmatch(path) and path.split("/")[0] in TOP and ("/" in path or "." in path):
            out.append((number, path + (f"::{test}" if test else "")))
    return out


def named_tests(doc: Path) -> list[tuple[int, str]]:
    """The test functions ``doc`` names alone (`test_only_root_is_served`; `test_a_stopped_..` for a
    prefix), with their line numbers."""
    return [(n, w) for n, w in code_words(doc) if TEST.fullmatch(w.removesuffix("...").removesuffix("_"))]


def missing_path(path: str) -> str:
    """Why ``path`` (of named_paths) is not there, or ""."""
    path, _, test = path.partition("::")
    if not (ROOT / path).exists():
        return f"no {path}"
    if test and not re.search(rf"^\s*def {test}\(", (ROOT / path).read_text(), re.M):
        return f"no {test} in {path}"
    return ""


def all_test_names() -> set[str]:
    return {name for p in TESTS.values() for name in re.findall(r"^\s*def (test_\w+)\(", p.read_text(), re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading(doc: Path) -> None:
    broken = []
    for number, target in links(doc):
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{doc.name}:{number}: {target}: no {dest.relative_to(ROOT)}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{doc.name}:{number}: {target}: no heading #{anchor} in {dest.name}")
    assert broken == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_repo_path_and_test_named_exists(doc: Path) -> None:
    missing = [f"{doc.name}:{n}: {why}" for n, path in named_paths(doc) if (why := missing_path(path))]
    names = all_test_names()
    for number, name in named_tests(doc):
        prefix = name.endswith("...")
        stem = name.removesuffix("...")
        if not (any(t.startswith(stem) for t in names) if prefix else name in names):
            missing.append(f"{doc.name}:{number}: no test named {name}")
    assert missing == []


def test_the_checks_see_what_they_should(tmp_path: Path) -> None:
    """The parsing itself, on a doc of known content: links outside code, paths in spans and fences,
    test names, headings as GitHub anchors them."""
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# The zygote's trust model\n"
        "## With `make install` (from a clone)\n"
        "See [design](design.md#layout), [web](https://example.org) and `[not](a-link.md)`.\n"
        "`tools/release.py stage`, `test_zygote.py::test_only_root_is_served`, `/opt/cni/bin`, `lib/x.pyc`\n"
        "```\n"
        "cni_macvlan/cni/       the core, (ipam/store.py)\n"
        "```\n"
        "`test_silent_connections_delay_no_one` and `test_a_stopped_...`\n"
    )
    assert anchors(doc) == {"the-zygotes-trust-model", "with-make-install-from-a-clone"}
    assert links(doc) == [(3, "design.md#layout")]
    assert named_paths(doc) == [
        (4, "tools/release.py"),
        (4, "tests/test_zygote.py::test_only_root_is_served"),
        (6, "cni_macvlan/cni/"),
        (6, "ipam/store.py"),
    ]
    assert named_tests(doc) == [(8, "test_silent_connections_delay_no_one"), (8, "test_a_stopped_...")]
    assert missing_path("tests/test_zygote.py::test_only_root_is_served") == ""
    assert missing_path("tests/test_zygote.py::test_nothing") == "no test_nothing in tests/test_zygote.py"
    assert missing_path("launcher/_cni_install.py") == "no launcher/_cni_install.py"


if __name__ == "__main__":
    # every repo path the docs name, for a move's review: where, and whether it exists
    for doc in DOCS:
        for number, path in named_paths(doc):
            why = missing_path(path)
            sys.stdout.write(f"{doc.relative_to(ROOT)}:{number}: {path}{'  MISSING: ' + why if why else ''}\n")
