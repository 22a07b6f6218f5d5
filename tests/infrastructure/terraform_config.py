"""Read the Terraform configuration under infrastructure/ with python-hcl2, for the tests.

python-hcl2 8 keeps the quotes of labels and string literals and marks blocks with
``__is_block__``. ``load_hcl`` turns that into a plainer shape the tests read: labels and
strings without quotes, every attribute value in a one-element list, and every block as a
list of dicts, so that an attribute and a block of the same name cannot be confused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRASTRUCTURE = REPO_ROOT / "infrastructure"
MODULES = INFRASTRUCTURE / "modules"
ENVIRONMENTS = ("stg", "prod")
BLOCK_MARKER = "__is_block__"


def load_hcl(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as source:
        return _body(hcl2.load(source))


def _body(raw: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in raw.items():
        # The parser's own keys, such as the block marker and "__comments__".
        if key.startswith("__"):
            continue
        if isinstance(value, list) and value and all(_is_block(item) for item in value):
            body[_unquote(key)] = [_block(item) for item in value]
        else:
            body[_unquote(key)] = [_value(value)]
    return body


def _is_block(value: Any) -> bool:
    """Tell a block (or labels leading to one) from an object literal."""
    if not isinstance(value, dict) or not value:
        return False
    return BLOCK_MARKER in value or all(_is_block(inner) for inner in value.values())


def _block(raw: dict[str, Any]) -> dict[str, Any]:
    if BLOCK_MARKER in raw:
        return _body(raw)
    return {_unquote(label): _block(inner) for label, inner in raw.items()}


def _value(raw: Any) -> Any:
    if isinstance(raw, str):
        return _unquote(raw)
    if isinstance(raw, list):
        return [_value(item) for item in raw]
    if isinstance(raw, dict):
        return {_unquote(key): _value(item) for key, item in raw.items() if key != BLOCK_MARKER}
    return raw


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def attribute(body: dict[str, Any], name: str) -> Any:
    """Return an attribute's value without the parser's one-element list around it."""
    value = body[name]
    assert isinstance(value, list) and len(value) == 1, f"{name} is a block, not an attribute"
    return value[0]


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Return the nested blocks called name, in file order (empty when there are none)."""
    return body.get(name, [])


def only_block(body: dict[str, Any], name: str) -> dict[str, Any]:
    found = blocks(body, name)
    assert len(found) == 1, f"expected one {name} block, found {len(found)}"
    return found[0]


@dataclass
class TerraformDirectory:
    """The merged top-level blocks of every .tf file in one directory."""

    path: Path
    top_level: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> TerraformDirectory:
        directory = cls(path)
        for tf_file in sorted(path.glob("*.tf")):
            for block_type, entries in load_hcl(tf_file).items():
                directory.top_level.setdefault(block_type, []).extend(entries)
        return directory

    def _labelled(self, block_type: str, kind: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for entry in self.top_level.get(block_type, []):
            found.update(entry.get(kind, {}))
        return found

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Return the resources of one type by name."""
        return self._labelled("resource", resource_type)

    def resource(self, resource_type: str, name: str) -> dict[str, Any]:
        return self.resources(resource_type)[name]

    def data(self, data_type: str, name: str) -> dict[str, Any]:
        return self._labelled("data", data_type)[name]

    def resource_types(self) -> set[str]:
        return {
            resource_type for entry in self.top_level.get("resource", []) for resource_type in entry
        }

    def variables(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for entry in self.top_level.get("variable", []):
            found.update(entry)
        return found

    def outputs(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for entry in self.top_level.get("output", []):
            found.update(entry)
        return found

    def modules(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for entry in self.top_level.get("module", []):
            found.update(entry)
        return found

    def locals(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for entry in self.top_level.get("locals", []):
            found.update(entry)
        return found


def all_terraform_directories() -> list[Path]:
    return [INFRASTRUCTURE, *sorted(path for path in MODULES.iterdir() if path.is_dir())]
