"""The docs site's link checking is on: a broken anchor, a missing page or a link out of docs/ to a file the
site does not include fails `mkdocs build --strict` (hack/lint builds the real site the same way)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _build(tmp_path: Path, extra_markdown: str) -> subprocess.CompletedProcess:
    """The real site, with `extra_markdown` appended to its versions page, built from a copy in tmp_path."""
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    with (docs / "versions.md").open("a") as page:
        page.write(extra_markdown)
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config.update(docs_dir=str(docs), site_dir=str(tmp_path / "site"), hooks=[str(ROOT / "hack/docs/hooks.py")])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    mkdocs = Path(sys.executable).with_name("mkdocs")
    return subprocess.run(
        [str(mkdocs), "build", "--strict", "-f", str(tmp_path / "mkdocs.yml")],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
    )


def test_broken_links_and_anchors_fail_the_strict_build(tmp_path):
    result = _build(
        tmp_path,
        "\n[a](troubleshooting.md#no-such-anchor) [b](no-such-page.md) [c](../hack/test) [d](../SECURITY.md#nope)\n",
    )
    assert result.returncode != 0, result.stderr
    log = result.stdout + result.stderr
    assert "'troubleshooting.md' does not contain an anchor '#no-such-anchor'" in log
    assert "'no-such-page.md'" in log
    assert "links to ../hack/test" in log  # out of docs/, not included: the hook refuses it
    assert "does not contain an anchor '#nope'" in log  # SECURITY.md is included, and its anchors checked
    assert "in strict mode" in log


def test_a_link_to_an_included_repository_file_resolves(tmp_path):
    result = _build(tmp_path, "\n[security](../SECURITY.md) [bench](../bench/README.md)\n")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "site" / "versions" / "index.html").read_text()
    assert 'href="../repository/SECURITY/"' in html and 'href="../repository/bench/"' in html


def test_the_readmes_relative_links_point_at_files_of_the_repository():
    """The README is not part of the site, so mkdocs does not check it; this does (a page another branch adds
    is allowed while the hook stands a placeholder in for it)."""
    import re

    readme = (ROOT / "README.md").read_text()
    pending = {"docs/" + page for page in _hooks().PENDING_PAGES}
    links = [t for t in re.findall(r"\]\(([^)\s]+)\)", readme) if not re.match(r"^[a-z]+:", t)]
    assert links, "the README links nothing"
    broken = [t for t in links if not (ROOT / t.partition("#")[0]).exists() and t.partition("#")[0] not in pending]
    assert not broken, f"README links to missing files: {broken}"
    from markdown.extensions.toc import slugify

    for target in links:
        path, _, anchor = target.partition("#")
        if anchor and (ROOT / path).is_file():
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), flags=re.M)
            assert anchor in {slugify(h, "-") for h in headings}, f"README links {target}: no such heading"
    assert len(readme.splitlines()) <= 150, "the README stays short: move the detail into a docs/ page"


def _hooks():
    import importlib.util

    spec = importlib.util.spec_from_file_location("lsml_docs_hooks", ROOT / "hack" / "docs" / "hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
