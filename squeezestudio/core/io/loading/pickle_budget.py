"""Measure what a pickle would build before the weights-only unpickler builds it.

The weights-only unpickler runs no code, but it still builds whatever
structure the opcodes describe, and memo references (``BINGET``) let a small
file reuse one sub-object many times: 60 levels of tuples with shared halves
are 2^60 nodes once a dict hashes them as keys (tuples do not cache their
hash), a name made of lists nested 40 deep with shared halves is 2^40 items
once printed. So before ``torch.load`` we walk the opcodes with
:mod:`pickletools` (no objects are created) and simulate only each object's
depth and expanded size: sizes add up through memo references exactly as the
unpickled structure would, and the walk stops as soon as a limit is passed.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path
from typing import BinaryIO

from squeezestudio.core.errors import ModelLoadError
from squeezestudio.core.limits import Limits, current_limits, limits_hint

_MARK = object()
_IN_PLACE = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "BUILD", "ADDITEMS"}
_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET = {"GET", "BINGET", "LONG_BINGET"}
_LEGACY_PICKLES = 4  # magic number, protocol version, system info, then the object itself


class _Node:
    """Depth and expanded size of one object the pickle would build."""

    __slots__ = ("depth", "size")

    def __init__(self, depth: int = 0, size: int = 1) -> None:
        self.depth = depth
        self.size = size


class _Walk:
    def __init__(self, limits: Limits, source: str) -> None:
        self.limits = limits
        self.source = source

    def refuse(self, what: str, value: int, limit: int, name: str) -> None:
        raise ModelLoadError(f"{self.source} describes a structure whose {what} is over {limit:,d} "
                             f"(at least {value:,d}), so it was not unpickled; {limits_hint(name)}")

    def check(self, node: _Node) -> None:
        if node.depth > self.limits.pickle_depth:
            self.refuse("nesting depth", node.depth, self.limits.pickle_depth, "pickle_depth")
        if node.size > self.limits.pickle_nodes:
            self.refuse("number of objects (shared objects counted each time they are used)",
                        node.size, self.limits.pickle_nodes, "pickle_nodes")

    def run(self, stream: BinaryIO) -> None:
        stack: list[object] = []
        memo: dict[int, object] = {}
        try:
            for op, arg, _pos in pickletools.genops(stream):
                self._step(op, arg, stack, memo)
        except ModelLoadError:
            raise
        except Exception as exc:  # a malformed pickle: torch.load reports it in its own words
            raise _Malformed(str(exc)) from exc

    def _step(self, op: pickletools.OpcodeInfo, arg: object, stack: list[object],
              memo: dict[int, object]) -> None:
        name = op.name
        if name == "MARK":
            stack.append(_MARK)
            return
        if name in _PUT:
            memo[int(arg)] = stack[-1]  # type: ignore[arg-type]
            return
        if name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
            return
        if name in _GET:
            stack.append(memo[int(arg)])  # type: ignore[arg-type]
            return
        if name == "DUP":
            stack.append(stack[-1])
            return
        if name == "POP_MARK":
            self._pop_to_mark(stack)
            return
        before, after = op.stack_before, op.stack_after
        popped: list[object] = []
        if pickletools.markobject in before:
            popped = self._pop_to_mark(stack)
            for _ in range(before.index(pickletools.markobject)):
                popped.insert(0, stack.pop())
        else:
            for _ in range(len(before)):
                popped.insert(0, stack.pop())
        nodes = [p for p in popped if isinstance(p, _Node)]
        if name in _IN_PLACE and nodes:
            target, others = nodes[0], nodes[1:]
            if others:
                target.depth = max(target.depth, 1 + max(o.depth for o in others))
                target.size += sum(o.size for o in others)
                self.check(target)
            stack.append(target)
            return
        for _ in after:
            node = _Node(depth=1 + max((n.depth for n in nodes), default=-1),
                         size=1 + sum(n.size for n in nodes))
            self.check(node)
            stack.append(node)

    @staticmethod
    def _pop_to_mark(stack: list[object]) -> list[object]:
        items: list[object] = []
        while True:
            item = stack.pop()
            if item is _MARK:
                return items[::-1]
            items.append(item)


class _Malformed(Exception):
    """The opcode stream is broken; left for torch.load to report."""


def check_pickle_structure(path: Path, source: str) -> None:
    """Refuse a torch file whose pickled structure is too deep or expands too far.

    Reads ``data.pkl`` of a zip checkpoint, or the leading pickles of a legacy
    one. A stream too broken to walk is left to ``torch.load``, which reports
    it as a corrupt file.
    """
    walk = _Walk(current_limits(), source)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                if not names:
                    return
                info = archive.getinfo(names[0])
                if info.file_size > 64 * walk.limits.json_bytes:
                    walk.refuse("pickle size in bytes", info.file_size, 64 * walk.limits.json_bytes, "json_bytes")
                walk.run(io.BytesIO(archive.read(info)))
            return
        with open(path, "rb") as fh:
            for _ in range(_LEGACY_PICKLES):
                walk.run(fh)
    except _Malformed:
        return
    except (OSError, zipfile.BadZipFile, EOFError, UnicodeDecodeError):  # torch.load then names the damage
        return
