"""Human-readable names for WordNet class folders (ImageNet's ``n01440764``), from ImageNet's
``LOC_synset_mapping.txt``: one line per class, ``n01440764 tench, Tinca tinca``."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError


def read_synsets(path: str | Path) -> dict[str, str]:
    """WordNet id → its first name (``tench`` for ``n01440764 tench, Tinca tinca``)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UsageError(f"--synsets {path}: cannot read it ({e.strerror or e})") from None
    names = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        wnid, _, words = line.strip().partition(" ")
        name = words.split(",")[0].strip()
        if not name:
            raise UsageError(f"--synsets {path}: line {number} is not 'WNID name[, more names]' (ImageNet's "
                             f"LOC_synset_mapping.txt): {line[:80]!r}")  # fmt: skip
        names[wnid] = name
    return names
