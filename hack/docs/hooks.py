"""mkdocs hooks (mkdocs.yml `hooks:`): generated reference pages, repository files, and links that leave docs/.

- The reference pages (hack/docs/reference.py) are generated on every build from the code that owns each fact,
  so they are never committed and never stale.
- A few repository files that the guides link to (SECURITY.md, bench/README.md, the chart's README) are part
  of the site under `repository/`, at their repository paths, so a guide links `../SECURITY.md` exactly as
  GitHub resolves it and the site resolves the same link to the included page.
- Every other link out of docs/ is an error (a warning, which `mkdocs build --strict` turns into a failure):
  the site and the repository must agree on what a link points at.
- A page the nav names but another branch adds (`PENDING_PAGES`) gets a placeholder until it lands, so the nav
  can name it now without a committed stub that would conflict with the real page.
"""

from __future__ import annotations

import importlib.util
import logging
import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("mkdocs.hooks.lsml")

# Repository files published under repository/<path> (with the images they show).
INCLUDED = ("SECURITY.md", "bench/README.md", "charts/lsml-operator/README.md")
INCLUDED_ASSETS = ("bench/results",)
PREFIX = "repository/"
PENDING_PAGES = {
    "migrating-from-label-studio-ml-backend.md": (
        "# Migrating from label-studio-ml-backend\n\n"
        "This guide is being written (docs/migrating-from-label-studio-ml-backend.md). Until it lands: "
        "[Writing a backend](writing-a-backend.md) says which imports to change.\n"
    ),
}
_LINK = re.compile(r"(?<!!)(\[[^\]\n]*\]\()([^)\s]+)(\))|(!\[[^\]\n]*\]\()([^)\s]+)(\))")
_FENCE = re.compile(r"^(```|~~~)")


def _reference_module() -> Any:
    spec = importlib.util.spec_from_file_location("lsml_docs_reference", Path(__file__).with_name("reference.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_files(files: Files, config: Any) -> Files:
    reference = _reference_module()
    for src_uri, name in reference.PAGES.items():
        files.append(File.generated(config, src_uri, content=reference.generate(name)))
    files.append(File.generated(config, "reference/openapi.json", content=reference.openapi_json()))
    for path in INCLUDED:
        files.append(File.generated(config, PREFIX + path, abs_src_path=str(ROOT / path)))
    for folder in INCLUDED_ASSETS:
        for asset in sorted((ROOT / folder).glob("*.png")):
            rel = asset.relative_to(ROOT).as_posix()
            files.append(File.generated(config, PREFIX + rel, abs_src_path=str(asset)))
    for src_uri, content in PENDING_PAGES.items():
        if files.get_file_from_path(src_uri) is None:
            log.info("%s is not in docs/ yet: a placeholder stands in for it", src_uri)
            files.append(File.generated(config, src_uri, content=content))
    return files


def _repository_path(src_uri: str) -> str:
    """Where a page's source lives in the repository."""
    return src_uri[len(PREFIX) :] if src_uri.startswith(PREFIX) else "docs/" + src_uri


def _rewrite(target: str, page_uri: str) -> str:
    """A link as the site must see it: links that leave docs/ are mapped onto the included repository files."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return target  # external (http:, mailto:), in-page, or absolute (mkdocs validates those itself)
    path, sep, anchor = target.partition("#")
    if not path:
        return target
    here = posixpath.dirname(_repository_path(page_uri))
    repo_target = posixpath.normpath(posixpath.join(here, path))
    if repo_target.startswith("docs/"):
        site_target = repo_target[len("docs/") :]
    elif repo_target in INCLUDED or any(repo_target.startswith(f + "/") for f in INCLUDED_ASSETS):
        site_target = PREFIX + repo_target
    else:
        log.warning(
            "%s links to %s (%s in the repository), which the docs site does not include: link a page of docs/, "
            "or add the file to INCLUDED in hack/docs/hooks.py",
            _repository_path(page_uri),
            target,
            repo_target,
        )
        return target
    relative = posixpath.relpath(site_target, posixpath.dirname(page_uri) or ".")
    return relative + sep + anchor


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    page_uri = page.file.src_uri
    out, fenced = [], False
    for line in markdown.splitlines(keepends=True):
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
        if not fenced:
            line = _LINK.sub(
                lambda m: (
                    m.group(1) + _rewrite(m.group(2), page_uri) + m.group(3)
                    if m.group(1)
                    else m.group(4) + _rewrite(m.group(5), page_uri) + m.group(6)
                ),
                line,
            )
        out.append(line)
    return "".join(out)
