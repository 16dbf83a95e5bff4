"""Every import in src/resnetlab (inside functions too, no exceptions) goes to the module's own part or
to a lower floor (resnetlab._floors)."""

import ast
import shutil
from pathlib import Path

import resnetlab
from resnetlab._floors import FLOORS, floor

SRC = Path(resnetlab.__file__).parent


def _imports(path: Path, src: Path):
    """(line, module) of every import in ``path``, modules as tuples of names (``from .. import hardware``
    imports the module resnetlab.hardware)."""
    rel = path.relative_to(src.parent).with_suffix("").parts
    package = rel[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, tuple(a.name.split("."))) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = base + tuple(node.module.split(".")) if node.module else base
            for alias in node.names:
                sub = src.parent.joinpath(*module, alias.name)
                is_module = sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file()
                yield node.lineno, (*module, alias.name) if is_module else module


def violations(src: Path) -> list[str]:
    wrong = []
    for path in sorted(src.rglob("*.py")):
        part = path.relative_to(src).parts[0].removesuffix(".py")
        if part == "__init__":  # resnetlab/__init__.py: the API, above every floor
            continue
        for line, target in _imports(path, src):
            if target[0] == "resnetlab" and len(target) > 1 and target[1] != part and floor(target[1]) >= floor(part):
                wrong.append(f"{path.relative_to(src)}:{line} imports {'.'.join(target)}")
    return wrong


def test_no_import_from_a_higher_floor():
    assert not violations(SRC), "\n".join(violations(SRC))


def test_every_part_is_on_a_floor():
    parts = {p.name.removesuffix(".py") for p in SRC.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    assert parts - {"__init__"} == {name for level in FLOORS for name in level}


def test_an_import_inside_a_function_is_seen(tmp_path):
    """A lazy import of the trainer from the models floor, and one from deploy into train (same floor)."""
    copy = tmp_path / "resnetlab"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("*.safetensors", "__pycache__"))
    with open(copy / "models" / "registry.py", "a") as f:
        f.write("\n\ndef _late():\n    from ..train import fit\n")
    with open(copy / "deploy" / "info.py", "a") as f:
        f.write("\n\ndef _late():\n    from resnetlab.train.loop import fit\n")
    assert [v.split(":")[0] for v in violations(copy)] == ["deploy/info.py", "models/registry.py"]
