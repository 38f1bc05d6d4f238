"""Fuzz target: hostile .sqz, safetensors, state_dict and ONNX files end in our own error, within limits.

Hypothesis builds each file (see ``hostile_strategies.py``); one long-lived
worker process opens it under a 1 GB memory ceiling and a 5 s clock. A case
may load (a harmless mutation) or be refused with a SqueezeStudioError
sentence; a traceback, a MemoryError, a crash or a timeout fails the test.
The long campaign (``scripts/fuzz_campaign.py``) runs the same strategies.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from hostile_strategies import FORMATS, FuzzWorker

EXAMPLES = 12
SECONDS = 10.0  # per case; generous because the suite shares 2 cores (the campaign reports the real times)


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> FuzzWorker:
    w = FuzzWorker(tmp_path_factory.mktemp("fuzz"), timeout=SECONDS)
    yield w
    w.close()


def _check(worker: FuzzWorker, case: tuple[str, bytes]) -> None:
    result = worker.run(*case)
    assert result.outcome in ("loaded", "refused"), f"{result.outcome}: {result.error}"


_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.data_too_large])


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_hostile_files_end_in_our_own_error(worker: FuzzWorker, fmt: str) -> None:
    @_SETTINGS
    @given(FORMATS[fmt]())
    def case(file: tuple[str, bytes]) -> None:
        _check(worker, file)

    case()
