"""A long-lived process that opens model files under a memory limit and reports how each ended.

Started by the fuzz test and ``scripts/fuzz_campaign.py`` (one interpreter
for many cases: importing torch costs seconds). It reads one JSON line per
case, ``{"path": ...}``, opens the file with ``load_model`` and answers one
JSON line: ``{"outcome": "loaded" | "refused" | "foreign", "error": ...,
"seconds": ...}``. ``refused`` means one of our own ``SqueezeStudioError``
sentences; ``foreign`` is anything else (a traceback the user would see).
The address space is limited to the size after start-up plus 1 GB
(``RLIMIT_AS``), so a case that tries to allocate more ends as ``foreign``
(MemoryError); the parent enforces the time limit by killing this process.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HEADROOM = 1 << 30


def _address_space() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> int:
    import torch

    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.errors import SqueezeStudioError
    from squeezestudio.core.io.loading import load_model

    torch.set_num_threads(1)
    registry = default_registry()
    for warm in filter(None, os.environ.get("FUZZ_WARM_FILES", "").split(os.pathsep)):
        load_model(warm, registry=registry)  # first-use costs (kernels, imports) before the limit and the clock
    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + HEADROOM, resource.RLIM_INFINITY))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        start = time.perf_counter()
        try:
            load_model(request["path"], registry=registry)
            answer = {"outcome": "loaded", "error": ""}
        except SqueezeStudioError as exc:
            answer = {"outcome": "refused", "error": f"{type(exc).__name__}: {exc}"[:400]}
        except BaseException as exc:  # noqa: BLE001 - exactly what the fuzzing looks for
            answer = {"outcome": "foreign", "error": "".join(traceback.format_exception(exc))[-2000:]}
        answer["seconds"] = time.perf_counter() - start
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
