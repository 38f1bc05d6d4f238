"""JSON and YAML from files, parsed with limits on size, nesting, aliases, keys and duplicates.

Python's ``json`` and PyYAML recurse once per nesting level, so 100,000 nested
brackets end in ``RecursionError``; YAML aliases let a 1 KB file expand to 9^10
nodes ('billion laughs'); both silently keep the last of two equal keys. Every
document that comes from a file (safetensors headers, .sqz and checkpoint
metadata, recipes, projects) goes through :func:`load_json` or :func:`load_yaml`
here, which measure first (nesting depth by a vectorised bracket count, alias
expansion on the composed node graph) and only then build Python objects.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Optional

import numpy as np
import yaml

from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.limits import Limits, check_count, current_limits

def bracket_depth(text: str | bytes) -> int:
    """Deepest nesting of [] and {} outside double-quoted strings.

    Linear and vectorised (a 64 MB header takes well under a second): escape
    pairs are removed with ``bytes.replace``, then a bracket is inside a
    string when an odd number of quotes precede it.
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if data.count(b"[") + data.count(b"{") <= 1:
        return int(data.count(b"[") + data.count(b"{"))
    data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    codes = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(codes == ord('"'))
    opening = (codes == ord("[")) | (codes == ord("{"))
    brackets = np.flatnonzero(opening | (codes == ord("]")) | (codes == ord("}")))
    outside = np.searchsorted(quotes, brackets) % 2 == 0
    brackets = brackets[outside]
    if brackets.size == 0:
        return 0
    steps = np.where(opening[brackets], 1, -1).astype(np.int32)
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def read_text_file(path: str | os.PathLike[str], max_bytes: int, what: str, limit_name: str,
                   error: type[SqueezeStudioError] = SqueezeStudioError) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` (read no further than that).

    ``/dev/zero``, a FIFO or a folder is refused before reading: they have no
    end, or block, or are not text.
    """
    p = Path(path)
    try:
        info = os.stat(p)
    except FileNotFoundError:
        raise error(f"the {what} {p} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read the {what} {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a device, pipe or socket)"
        raise error(f"the {what} {p} is {kind}")
    check_count(info.st_size, max_bytes, f"the size in bytes of the {what} {p}", limit_name, error)
    try:
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read the {what} {p}: {exc.strerror or exc}") from None
    check_count(len(data), max_bytes, f"the size in bytes of the {what} {p}", limit_name, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"the {what} {p} is not UTF-8 text (byte {exc.start})") from None


def _pairs_hook(limits: Limits, where: str, error: type[SqueezeStudioError]):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if len(key) > limits.key_length:
                check_count(len(key), limits.key_length, f"a key in {where} has a length that", "key_length",
                            error)
            if key in out:
                raise error(f"{where} names the key {key[:80]!r} twice; each key may appear once")
            out[key] = value
        return out
    return hook


def load_json(text: str | bytes, where: str, error: type[SqueezeStudioError] = SqueezeStudioError,
              max_bytes: Optional[int] = None) -> Any:
    """Parse JSON ``text`` from ``where`` (a phrase: "the safetensors header of x.pt").

    Refuses, with ``error`` and one sentence: more than ``max_bytes`` (default
    the ``json_bytes`` limit), nesting deeper than ``json_depth``, keys longer
    than ``key_length``, a key given twice, and malformed JSON.
    """
    limits = current_limits()
    size = len(text)
    check_count(size, max_bytes or limits.json_bytes, f"the size in bytes of {where}", "json_bytes", error)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{where} is not UTF-8 text (byte {exc.start})") from None
    check_count(bracket_depth(text), limits.json_depth, f"the nesting depth of {where}", "json_depth", error)
    try:
        return json.loads(text, object_pairs_hook=_pairs_hook(limits, where, error))
    except json.JSONDecodeError as exc:
        raise error(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:  # unreachable after the depth check; kept so no input can crash us
        raise error(f"{where} is nested too deeply to read") from None


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a depth limit while composing (its composer recurses)."""

    max_depth = 64
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D401 - PyYAML hook
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                mark = self.peek_event().start_mark
                raise _TooDeep(mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _measure_nodes(root: yaml.Node, limits: Limits, where: str, error: type[SqueezeStudioError]) -> None:
    """Count nodes with aliases expanded (memoised on the node graph) and refuse duplicate keys."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            if len(node.value) > limits.key_length * 64:
                check_count(len(node.value), limits.key_length * 64, f"a value in {where} has a length that",
                            "key_length", error)
            sizes[key] = 1
            continue
        children = ([c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value))
        if not children_done:
            if key in in_progress:  # a recursive alias: counted once
                sizes[key] = 1
                continue
            in_progress.add(key)
            if isinstance(node, yaml.MappingNode):
                _check_keys(node, limits, where, error)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        in_progress.discard(key)
        total = 1 + sum(sizes.get(id(c), 1) for c in children)
        sizes[key] = total
        if total > limits.yaml_nodes:
            check_count(total, limits.yaml_nodes, f"the number of values in {where} (aliases expanded)",
                        "yaml_nodes", error)


def _check_keys(node: yaml.MappingNode, limits: Limits, where: str, error: type[SqueezeStudioError]) -> None:
    seen: set[tuple[str, str]] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        if len(key_node.value) > limits.key_length:
            check_count(len(key_node.value), limits.key_length, f"a key in {where} has a length that",
                        "key_length", error)
        ident = (key_node.tag, key_node.value)
        if ident in seen:
            raise error(f"{where} names the key {key_node.value[:80]!r} twice (line {key_node.start_mark.line + 1}); "
                        "each key may appear once")
        seen.add(ident)


def load_yaml(text: str, where: str, error: type[SqueezeStudioError] = SqueezeStudioError) -> Any:
    """Parse YAML ``text`` safely with the same limits as :func:`load_json`, plus alias expansion."""
    limits = current_limits()
    check_count(len(text), limits.recipe_bytes, f"the size in bytes of {where}", "recipe_bytes", error)
    loader = _BoundedLoader(text)
    loader.max_depth = limits.json_depth
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _measure_nodes(node, limits, where, error)
        return loader.construct_document(node)
    except _TooDeep as exc:
        raise error(f"the nesting depth of {where} is over the limit of {limits.json_depth} "
                    f"(line {exc.line}; raise it with {limits.describe('json_depth')})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise error(f"{where} is not valid YAML: {problem}{line}") from None
    except RecursionError:
        raise error(f"{where} is nested too deeply to read") from None
    finally:
        loader.dispose()
