"""The documentation against what it documents: every page reachable from the README, every relative
link and anchor resolving, and the README's shipped-weights table equal to the files themselves."""

import re
from pathlib import Path

import pytest

from resnetlab.pretrained import FOLDER, available, weights_meta

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if "results" not in p.relative_to(ROOT / "docs").parts)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_doc_page_is_linked_from_the_readme():
    linked = {(README.parent / target.split("#")[0]).resolve() for target in LINK.findall(README.read_text())}
    missing = [str(p.relative_to(ROOT)) for p in PAGES if p.resolve() not in linked]
    assert PAGES and not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(target)
    assert not broken, f"{page.name}: links that do not resolve: {broken}"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_user_docs_name_no_issue_numbers_or_machine_paths(page):
    text = page.read_text()
    found = re.findall(r"\bissue[ -]\d+|/work/|runs/experiment-[\w-]+-full", text, re.I)
    assert not found, f"{page.name}: {found}"


def test_readme_weights_table_is_the_shipped_files():
    section = README.read_text().split("## Shipped weights", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)\.(\w+)` \| ([\d.]+)% \(([\d,]+) of ([\d,]+)\) \| ([\d.]+) MB \|$", section, re.M)
    shipped = {(model, weights) for model, names in available().items() for weights in names}
    assert {(m, w) for m, w, *_ in rows} == shipped and len(rows) == len(shipped)
    for model, weights, error, count, images, size in rows:
        meta = weights_meta(model, weights)["weights"]
        assert int(images.replace(",", "")) == meta["test_images"]
        assert int(count.replace(",", "")) == round(meta["test_error"] * meta["test_images"]), model
        assert error == f"{100 * meta['test_error']:.2f}", model
        assert size == f"{(FOLDER / f'{model}-{weights}.safetensors').stat().st_size / 1e6:.2f}", model


def test_readme_is_a_front_door():
    """Short enough to read: the evidence lives in docs/."""
    assert len(README.read_text().splitlines()) <= 250
