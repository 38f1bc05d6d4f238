"""Files the long fuzz campaign (scripts/fuzz_campaign.py) found ending in a traceback: now one sentence each.

Each file in tests/data/fuzz_regressions/ is a case the campaign logged before the fix: graph
descriptions whose nodes pass a number, a string or None where a tensor or a layer name belongs
(AttributeError inside the probe forward), an input spec declaring a billion channels with a
one-value mean (MemoryError), and a 4-byte "safetensors" file that torch.load hands to the
safetensors reader (SafetensorError). A second campaign on the fixed code found three more
(``round2_*``): a layer whose arguments cannot build it (a negative size), and zip or pickle
entries whose names are not UTF-8.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.io.loading import load_model

CASES = sorted((Path(__file__).resolve().parents[1] / "data" / "fuzz_regressions").iterdir())


def test_the_regression_files_are_there():
    assert len(CASES) >= 10 and {p.suffix for p in CASES} == {".safetensors", ".sqz", ".pt"}


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_a_case_the_campaign_logged_loads_or_is_refused_in_one_sentence(path):
    try:
        handle = load_model(path, registry=default_registry())
    except SqueezeStudioError as exc:  # the campaign's pass: our own error, one sentence
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message
    else:  # also a pass: the damage was harmless (a pickle whose odd entry name torch reads anyway)
        assert handle.module is not None and path.name.startswith("round2_")
