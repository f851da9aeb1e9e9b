"""Render the Relay Helm chart without helm, for the tests: the subset of Go templates (and of
Helm's and Sprig's functions) that deploy/helm/relay uses, and nothing else.

helm cannot be installed on the machines that run the tests, and the chart's promise is that
its default rendering is deploy/kubernetes/. This renderer keeps that promise checked: it
implements Go's template semantics for what the chart uses (``{{- ... -}}`` trimming of
whitespace and newlines, ``.Values``/``.Release``/``.Chart``, ``$``, ``if``/``else``,
``range`` over a list, ``define``/``include``, pipelines into ``toYaml``, ``nindent``,
``indent``, ``quote``, ``not``, ``default``) and raises :class:`Unsupported` on any other
construct, so a template that grows past it fails loudly instead of rendering wrongly. A missing
value raises too (helm would print nothing). ``helm template`` stays the reference: the chart's
README shows the command that compares the two.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_ACTION = re.compile(r"\{\{(- )?(.*?)( -)?\}\}", re.DOTALL)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[^\s]+')


class Unsupported(ValueError):
    """A template construct (or a missing value) this renderer does not handle."""


@dataclass
class Node:
    kind: str  # text, print, if, range
    text: str = ""
    body: list[Node] = field(default_factory=list)
    orelse: list[Node] = field(default_factory=list)


def _tokens(source: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", body) pieces, with Go's trim markers applied to the text."""
    pieces: list[tuple[str, str]] = []
    position = 0
    trim_next = False
    for match in _ACTION.finditer(source):
        text = source[position : match.start()]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if match.group(1):
            text = text.rstrip(" \t\r\n")
        pieces.append(("text", text))
        pieces.append(("action", match.group(2).strip()))
        trim_next = bool(match.group(3))
        position = match.end()
    tail = source[position:]
    pieces.append(("text", tail.lstrip(" \t\r\n") if trim_next else tail))
    return pieces


def parse(source: str, defines: dict[str, list[Node]]) -> list[Node]:
    """The template's nodes; ``define`` blocks go into ``defines``."""
    root: list[Node] = []
    # (node list being filled, the control node that owns it, its kind)
    stack: list[tuple[list[Node], Node | None, str]] = [(root, None, "root")]
    for kind, text in _tokens(source):
        out = stack[-1][0]
        if kind == "text":
            if text:
                out.append(Node("text", text))
            continue
        word, _, rest = text.partition(" ")
        if text.startswith("/*") and text.endswith("*/"):
            continue
        if word in ("if", "range"):
            node = Node(word, rest.strip())
            out.append(node)
            stack.append((node.body, node, word))
        elif word == "define":
            name = json.loads(rest.strip())
            defines[name] = []
            stack.append((defines[name], None, "define"))
        elif word == "else" and not rest:
            owner = stack[-1][1]
            if owner is None or owner.kind != "if":
                raise Unsupported(f"else outside if: {{{{{text}}}}}")
            stack[-1] = (owner.orelse, owner, "else")
        elif word == "end" and not rest:
            if len(stack) == 1:
                raise Unsupported("end without a block")
            stack.pop()
        elif word in ("with", "template", "block", "break", "continue") or ":=" in text:
            raise Unsupported(f"{{{{{text}}}}}")
        else:
            out.append(Node("print", text))
    if len(stack) != 1:
        raise Unsupported(f"unclosed {stack[-1][2]}")
    return root


def _indent(spaces: int, text: str) -> str:
    pad = " " * spaces
    return pad + text.replace("\n", "\n" + pad)


def _to_yaml(value: Any) -> str:
    # helm: sigs.k8s.io/yaml (keys sorted), without the final newline
    return str(yaml.safe_dump(value, default_flow_style=False, sort_keys=True)).removesuffix("\n")


def _truth(value: Any) -> bool:
    # Go templates: false, 0, nil and empty strings, lists and maps are false
    return bool(value)


def _print(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise Unsupported(f"cannot print {value!r} (a map, a list or nothing)")


@dataclass
class Chart:
    """A chart directory: its templates, helpers, ``Chart.yaml`` and ``values.yaml``."""

    path: Path
    release: str = "relay"
    namespace: str = "default"
    defines: dict[str, list[Node]] = field(default_factory=dict)
    templates: dict[str, list[Node]] = field(default_factory=dict)
    notes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        for template in sorted((self.path / "templates").iterdir()):
            source = template.read_text()
            if template.name.startswith("_"):
                parse(source, self.defines)
            elif template.suffix in (".yaml", ".yml"):
                self.templates[template.name] = parse(source, self.defines)
            elif template.name == "NOTES.txt":
                self.notes = parse(source, self.defines)

    def default_values(self) -> dict[str, Any]:
        values: dict[str, Any] = yaml.safe_load((self.path / "values.yaml").read_text())
        return values

    def render(self, values: Mapping[str, Any] | None = None) -> dict[str, str]:
        """Template name -> rendered text, as ``helm template RELEASE CHART`` renders them."""
        root = self._root(values)
        return {name: self._run(nodes, root, root) for name, nodes in self.templates.items()}

    def render_notes(self, values: Mapping[str, Any] | None = None) -> str:
        """NOTES.txt, which helm prints after an install."""
        root = self._root(values)
        return self._run(self.notes, root, root)

    def _root(self, values: Mapping[str, Any] | None) -> dict[str, Any]:
        meta = yaml.safe_load((self.path / "Chart.yaml").read_text())
        return {
            "Values": self.default_values() if values is None else values,
            "Release": {"Name": self.release, "Namespace": self.namespace, "Service": "Helm"},
            "Chart": {
                "Name": meta["name"],
                "Version": meta["version"],
                "AppVersion": meta.get("appVersion"),
            },
        }

    def manifests(self, values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every object the chart renders (empty documents dropped)."""
        docs = []
        for text in self.render(values).values():
            docs += [doc for doc in yaml.safe_load_all(text) if doc]
        return docs

    # -- evaluation ---------------------------------------------------------------------

    def _run(self, nodes: list[Node], dot: Any, root: Any) -> str:
        out = []
        for node in nodes:
            if node.kind == "text":
                out.append(node.text)
            elif node.kind == "print":
                out.append(_print(self._pipeline(node.text, dot, root)))
            elif node.kind == "if":
                chosen = node.body if _truth(self._pipeline(node.text, dot, root)) else node.orelse
                out.append(self._run(chosen, dot, root))
            elif node.kind == "range":
                items = self._pipeline(node.text, dot, root)
                if not isinstance(items, list):
                    raise Unsupported(f"range over {items!r}: only lists")
                out += [self._run(node.body, item, root) for item in items]
        return "".join(out)

    def _pipeline(self, text: str, dot: Any, root: Any) -> Any:
        commands = [c.strip() for c in _split_pipes(text)]
        value = self._command(commands[0], dot, root, None)
        for command in commands[1:]:
            value = self._command(command, dot, root, value)
        return value

    def _command(self, command: str, dot: Any, root: Any, piped: Any) -> Any:
        words = _TOKEN.findall(command)
        if not words:
            raise Unsupported(f"empty command in {command!r}")
        functions: dict[str, Callable[..., Any]] = {
            "include": lambda name, ctx: self._run(self._define(name), ctx, root),
            "toYaml": _to_yaml,
            "nindent": lambda n, s: "\n" + _indent(n, s),
            "indent": _indent,
            "quote": lambda s: json.dumps(_print(s)),
            "not": lambda v: not _truth(v),
            "default": lambda fallback, v: v if _truth(v) else fallback,
        }
        head = words[0]
        if head in functions:
            args = [self._term(w, dot, root) for w in words[1:]]
            if piped is not None:
                args.append(piped)
            try:
                return functions[head](*args)
            except TypeError as exc:
                raise Unsupported(f"{command!r}: {exc}") from exc
        if piped is not None or len(words) != 1:
            raise Unsupported(f"{command!r}: not a known function")
        return self._term(head, dot, root)

    def _define(self, name: str) -> list[Node]:
        if name not in self.defines:
            raise Unsupported(f"include of undefined template {name!r}")
        return self.defines[name]

    def _term(self, word: str, dot: Any, root: Any) -> Any:
        if word.startswith('"'):
            return json.loads(word)
        if re.fullmatch(r"-?\d+", word):
            return int(word)
        if word in ("true", "false"):
            return word == "true"
        if word == ".":
            return dot
        if word == "$":
            return root
        if word.startswith("$."):
            return _field(root, word[2:])
        if word.startswith("."):
            return _field(dot, word[1:])
        raise Unsupported(f"unknown term {word!r}")


def _field(value: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise Unsupported(f"missing value .{path} (at {part!r})")
        value = value[part]
    return value


def _split_pipes(text: str) -> list[str]:
    parts, current, quoted = [], [], False
    for index, char in enumerate(text):
        if char == '"' and (index == 0 or text[index - 1] != "\\"):
            quoted = not quoted
        if char == "|" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts
