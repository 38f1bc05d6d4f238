"""Run the real command line on a hostile input with a memory ceiling and a clock.

Each case runs ``main(argv)`` in this process (a fresh interpreter per case
would cost 2 s of imports each) under an address-space limit of the
process's current size plus 1 GB (``RLIMIT_AS``, restored afterwards): an
input that would allocate more fails inside torch or numpy with a
MemoryError/RuntimeError instead of our own sentence, so the check below
fails. The case must also finish within 5 s of CPU time (process time, so
that other jobs on a shared machine do not count against it).
"""

from __future__ import annotations

import contextlib
import resource
import time

from squeezestudio.cli.main import main

HEADROOM = 1 << 30
SECONDS = 5.0


def _address_space() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@contextlib.contextmanager
def memory_ceiling(headroom: int = HEADROOM):
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + headroom, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_hostile(capsys, *argv: str) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, seconds) of ``squeezestudio argv`` under the ceiling."""
    capsys.readouterr()
    start = time.process_time()
    with memory_ceiling():
        code = main([str(a) for a in argv])
    seconds = time.process_time() - start
    out, err = capsys.readouterr()
    return code, out, err, seconds


def assert_refused(result: tuple[int, str, str, float], *needles: str) -> str:
    """Exit code 2, one ``error:`` line (no traceback), within the time limit; returns the line."""
    code, out, err, seconds = result
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert seconds < SECONDS, f"took {seconds:.1f} s"
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])
    return lines[0]
