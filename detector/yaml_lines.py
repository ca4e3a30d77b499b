"""Load YAML while remembering where each value came from, so validation errors can name the line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


@dataclass(frozen=True)
class LocatedYaml:
    """Parsed YAML data plus the line number (1-based) of every mapping key and sequence item."""

    path: Path
    data: Any
    lines: dict[tuple[str | int, ...], int]

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """Line of the deepest known prefix of ``loc`` (pydantic error locations may go deeper)."""
        key = tuple(loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return None

    def describe(self, error: ValidationError) -> str:
        """One line per validation error: ``file:line: field.path: message``."""
        messages = []
        for item in error.errors():
            loc = tuple(item["loc"])
            line = self.line_of(loc)
            where = f"{self.path}:{line}" if line else str(self.path)
            field = ".".join(str(part) for part in loc) or "(top level)"
            messages.append(f"{where}: {field}: {item['msg']}")
        return "\n".join(messages)


def _collect_lines(
    node: yaml.Node, prefix: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]
) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, str(key_node.value))
            out[key] = key_node.start_mark.line + 1
            _collect_lines(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = (*prefix, index)
            out[key] = item.start_mark.line + 1
            _collect_lines(item, key, out)


class YamlSyntaxError(ValueError):
    """The file is not valid YAML; the message names file, line and column."""


def load_located_yaml(path: Path) -> LocatedYaml:
    """Parse ``path``; raise :class:`YamlSyntaxError` or ``OSError`` with the file named."""
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise YamlSyntaxError(f"{where}: invalid YAML: {exc.problem}") from exc
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return LocatedYaml(path=path, data=data, lines=lines)
