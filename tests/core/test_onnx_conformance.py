"""ONNX's own node test cases, run through our importer, for every op it supports.

The onnx wheel ships the case *generators* (``onnx.backend.test.case.node``),
not the data: importing a generator module runs its ``export*`` functions,
which build each case (a one-node model plus inputs and expected outputs).
Only the modules of supported ops are imported, and the generated cases are
cached per onnx version, so this adds seconds, not a minute, to the suite.

Each plain case (not an ``_expanded`` function body) is converted with
:func:`convert_onnx` into a torch module and compared with the expected
outputs using onnx's tolerances. A case either passes, differs, or is
refused with one of our own errors naming the op; anything else (a
traceback from inside the converter or the built module) fails the suite.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import pytest
import torch

from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.io.loading.onnx_import import convert_onnx
from squeezestudio.core.io.loading.onnx_ops import CONVERTERS

PASS_GOAL = 0.95


@dataclass
class NodeCase:
    """One generated case: its name, the model, the inputs and the expected outputs."""

    name: str
    model: onnx.ModelProto
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    rtol: float
    atol: float

    @property
    def op(self) -> str:
        return self.model.graph.node[0].op_type


def _generator_modules(ops: set[str]) -> list[str]:
    """The generator modules of ``ops`` (``batch_normalization`` -> BatchNormalization, ``and_`` -> And)."""
    import onnx.backend.test.case.node as package  # lazy: only this test needs the generators

    wanted = {op.lower() for op in ops}
    names = []
    for info in pkgutil.iter_modules(package.__path__):
        key = info.name.replace("_", "").lower()
        if key in wanted or (key.endswith("op") and key[:-2] in wanted):
            names.append(f"{package.__name__}.{info.name}")
    return names


def _generate(ops: set[str]) -> list[NodeCase]:
    import onnx.backend.test.case.node as package

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in _generator_modules(ops):
            importlib.import_module(name)
    cases = []
    for case in package._NodeTestCases:
        inputs, outputs = case.data_sets[0]
        arrays = all(isinstance(v, np.ndarray) for v in list(inputs) + list(outputs))
        if "_expanded" in case.name or not arrays or len(case.model.graph.node) != 1:
            continue
        if case.model.graph.node[0].op_type not in ops:
            continue
        cases.append(NodeCase(case.name, case.model, list(inputs), list(outputs), case.rtol, case.atol))
    return cases


def _save(cases: list[NodeCase], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        arrays = {f"in{i}": v for i, v in enumerate(case.inputs)}
        arrays.update({f"out{i}": v for i, v in enumerate(case.outputs)})
        part = folder / f"{case.name}.tmp"
        with open(part, "wb") as f:
            np.savez(f, model=np.frombuffer(case.model.SerializeToString(), np.uint8),
                     tol=np.array([case.rtol, case.atol]), **arrays)
        os.replace(part, folder / f"{case.name}.npz")
    (folder / "index.txt").write_text("\n".join(sorted(c.name for c in cases)))


def _load(folder: Path) -> Optional[list[NodeCase]]:
    index = folder / "index.txt"
    if not index.is_file():
        return None
    cases = []
    for name in index.read_text().split():
        with np.load(folder / f"{name}.npz", allow_pickle=False) as data:
            model = onnx.load_from_string(data["model"].tobytes())
            n_in = sum(k.startswith("in") for k in data.files)
            n_out = sum(k.startswith("out") for k in data.files)
            rtol, atol = (float(v) for v in data["tol"])
            cases.append(NodeCase(name, model, [data[f"in{i}"] for i in range(n_in)],
                                  [data[f"out{i}"] for i in range(n_out)], rtol, atol))
    return cases


def _ops_key(ops: set[str]) -> str:
    return f"{abs(hash(tuple(sorted(ops)))) % 10**8:08d}"


@pytest.fixture(scope="module")
def node_cases(request: pytest.FixtureRequest) -> list[NodeCase]:
    ops = set(CONVERTERS) | {"Constant"}
    cache = getattr(request.config, "cache", None)
    folder = None
    if cache is not None:
        folder = Path(cache.mkdir(f"onnx_node_cases_{onnx.__version__}")) / _ops_key(ops)
        loaded = _load(folder)
        if loaded is not None:
            return loaded
    cases = _generate(ops)
    if folder is not None:
        _save(cases, folder)
    return cases


def _matches(got: object, want: np.ndarray, rtol: float, atol: float) -> Optional[str]:
    if not isinstance(got, torch.Tensor):
        return f"produced a {type(got).__name__}, not a tensor"
    if got.dtype == torch.bfloat16:
        if want.dtype.name != "bfloat16":
            return f"dtype bfloat16 instead of {want.dtype}"
        got, want = got.float(), want.astype(np.float32)
    array = got.detach().numpy()
    if array.shape != want.shape:
        return f"shape {list(array.shape)} instead of {list(want.shape)}"
    if array.dtype != want.dtype:
        return f"dtype {array.dtype} instead of {want.dtype}"
    if want.dtype.kind in "fc":
        close = np.isclose(array, want, rtol=rtol, atol=atol, equal_nan=True)
        return None if close.all() else f"{int((~close).sum())} of {want.size} values differ"
    return None if np.array_equal(array, want) else "values differ"


def _with_constant_operands(case: NodeCase) -> tuple[onnx.ModelProto, list[np.ndarray]]:
    """The case with every input after the first stored as an initializer, as real models store
    weights, shapes and axes; the first input stays the run-time input."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    graph = model.graph
    kept = list(graph.input)[:1]
    for info, value in zip(list(graph.input)[1:], case.inputs[1:]):
        graph.initializer.append(onnx.numpy_helper.from_array(value, info.name))
    del graph.input[:]
    graph.input.extend(kept)
    return model, case.inputs[:1]


def _tensor(value: np.ndarray) -> torch.Tensor:
    if value.dtype.name == "bfloat16":  # ml_dtypes' bfloat16: torch cannot read it directly
        return torch.from_numpy(value.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(np.array(value, copy=True))


def _convert_and_run(model: onnx.ModelProto, inputs: list[np.ndarray]) -> object:
    """Convert, then rebuild the module from the description's JSON text (as a .sqz file holds it)."""
    conversion = convert_onnx(model, allow_many_inputs=True, keep_all_outputs=True)
    conversion.graph = json.loads(json.dumps(conversion.graph))
    module = conversion.build()
    with torch.no_grad():
        return module(*[_tensor(v) for v in inputs])


def run_case(case: NodeCase) -> tuple[str, str]:
    """("pass" | "differs" | "refused", detail); other exceptions propagate (a crash).

    A case is first converted as generated (all operands are run-time inputs);
    if that is refused (e.g. "a non-constant weight"), again with the operands
    after the first as constants, which is how exported models hold them.
    """
    try:
        result = _convert_and_run(case.model, case.inputs)
    except SqueezeStudioError as exc:
        if len(case.inputs) < 2:
            return "refused", str(exc)
        try:
            result = _convert_and_run(*_with_constant_operands(case))
        except SqueezeStudioError as again:
            return "refused", str(again)
    results = list(result) if isinstance(result, (list, tuple)) else [result]
    if len(results) != len(case.outputs):
        return "differs", f"{len(results)} outputs instead of {len(case.outputs)}"
    for i, (got, want) in enumerate(zip(results, case.outputs)):
        problem = _matches(got, want, case.rtol, case.atol)
        if problem:
            return "differs", f"output {i}: {problem}"
    return "pass", ""


def conformance_report(cases: list[NodeCase]) -> tuple[dict[str, dict[str, int]], list[str], list[str]]:
    """Per-op counts, the refusals (with reasons) and the differences (with what differs)."""
    per_op: dict[str, dict[str, int]] = {}
    refused, differs = [], []
    for case in cases:
        status, detail = run_case(case)
        counts = per_op.setdefault(case.op, {"pass": 0, "differs": 0, "refused": 0})
        counts[status] += 1
        if status == "refused":
            refused.append(f"{case.name}: {detail}")
            assert case.op in detail, f"the refusal of {case.name} does not name {case.op}: {detail}"
        elif status == "differs":
            differs.append(f"{case.name}: {detail}")
    return per_op, refused, differs


def format_report(per_op: dict[str, dict[str, int]], refused: list[str], differs: list[str]) -> str:
    total = sum(sum(c.values()) for c in per_op.values())
    passed = sum(c["pass"] for c in per_op.values())
    lines = [f"ONNX node conformance: {passed}/{total} plain cases of supported ops pass "
             f"({100.0 * passed / max(total, 1):.1f}%)"]
    for op, c in sorted(per_op.items()):
        n = sum(c.values())
        lines.append(f"  {op:<24} {c['pass']:>3}/{n:<3} pass  {c['refused']:>3} refused  {c['differs']:>3} differ")
    lines += ["refused:"] + [f"  {r}" for r in refused] + ["differ:"] + [f"  {d}" for d in differs]
    return "\n".join(lines)


def test_node_conformance_of_supported_ops(node_cases: list[NodeCase], capsys: pytest.CaptureFixture) -> None:
    assert len(node_cases) > 500  # the generators really produced the cases of the supported ops
    per_op, refused, differs = conformance_report(node_cases)
    with capsys.disabled():
        print("\n" + format_report(per_op, refused, differs))
    passed = sum(c["pass"] for c in per_op.values())
    assert passed >= PASS_GOAL * len(node_cases), format_report(per_op, refused, differs)
