"""Vectorised canonical Huffman (squeezestudio's codec) against a plain pure-Python Huffman coder.

Run: ``.venv/bin/python benchmarks/bench_entropy.py [--n 1000000]``

Both coders get the same 1M 5-bit symbols (nearest-centroid indices of
Gaussian weights on a 32-entry linear codebook, as weight sharing produces)
in the same run. The baseline is the textbook approach (a heap-built tree, a
dict of bit strings, ``"".join`` to encode, a bit-by-bit walk to decode), as
pure-Python libraries such as dahuffman do it. Sizes are compared with the
Shannon bound ``n * H`` of the empirical distribution.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import time
from collections import Counter
from typing import Callable

import numpy as np

from squeezestudio.core.compression.codec import entropy
from squeezestudio.core.compression.codec.sparse_index import best_coded_width, gap_symbols


class PythonHuffman:
    """The straightforward dict-based Huffman coder used as the baseline."""

    def __init__(self, symbols: list[int]) -> None:
        tie = itertools.count()
        heap = [(count, next(tie), {sym: ""}) for sym, count in Counter(symbols).items()]
        heapq.heapify(heap)
        while len(heap) > 1:
            fa, _, a = heapq.heappop(heap)
            fb, _, b = heapq.heappop(heap)
            merged = {s: "0" + c for s, c in a.items()}
            merged.update({s: "1" + c for s, c in b.items()})
            heapq.heappush(heap, (fa + fb, next(tie), merged))
        self.codes: dict[int, str] = heap[0][2]
        self.decode_map = {c: s for s, c in self.codes.items()}

    def encode(self, symbols: list[int]) -> tuple[bytes, int]:
        bits = "".join([self.codes[s] for s in symbols])
        return int("1" + bits, 2).to_bytes((len(bits) + 8) // 8, "big"), len(bits)

    def decode(self, data: bytes, nbits: int) -> list[int]:
        bits = bin(int.from_bytes(data, "big"))[3:]
        out, code, lookup = [], "", self.decode_map
        for bit in bits[:nbits]:
            code += bit
            sym = lookup.get(code)
            if sym is not None:
                out.append(sym)
                code = ""
        return out


def best_time(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def shannon_bytes(symbols: np.ndarray) -> float:
    _, counts = np.unique(symbols, return_counts=True)
    return float(-(counts * np.log2(counts / counts.sum())).sum() / 8)


def run(n: int, repeat: int) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=n)
    symbols = np.searchsorted(np.linspace(w.min(), w.max(), 33)[1:-1], w)
    as_list = symbols.tolist()
    bound = shannon_bytes(symbols)
    print(f"{n:,} 5-bit cluster indices; Shannon bound {bound:,.0f} bytes, fixed 5-bit {n * 5 / 8:,.0f} bytes")

    data = entropy.encode(symbols)
    assert np.array_equal(entropy.decode(data, n), symbols)
    enc = best_time(lambda: entropy.encode(symbols), repeat)
    dec = best_time(lambda: entropy.decode(data, n), repeat)

    baseline = PythonHuffman(as_list)
    base_data, nbits = baseline.encode(as_list)
    assert baseline.decode(base_data, nbits) == as_list
    base_enc = best_time(lambda: baseline.encode(as_list), max(1, repeat // 2))
    base_dec = best_time(lambda: baseline.decode(base_data, nbits), 1)
    base_bytes = (nbits + 7) // 8  # payload only; the tree is not counted in its favour

    print(f"{'coder':<28}{'encode s':>10}{'decode s':>10}{'bytes':>12}{'vs Shannon':>12}")
    print(f"{'vectorised (squeezestudio)':<28}{enc:>10.4f}{dec:>10.4f}{len(data):>12,}{len(data) / bound:>12.4f}")
    print(f"{'pure-Python dict Huffman':<28}{base_enc:>10.4f}{base_dec:>10.4f}{base_bytes:>12,}"
          f"{base_bytes / bound:>12.4f}")
    print(f"speed-up: encode {base_enc / enc:.1f}x, decode {base_dec / dec:.1f}x")

    for density in (0.1, 0.35, 0.8):
        mask = rng.random(n) < density
        gaps = gap_symbols(mask, best_coded_width(mask))
        coded = entropy.encode(gaps)
        g_enc = best_time(lambda: entropy.encode(gaps), repeat)
        print(f"gap stream, {density:.0%} kept: {gaps.size:,} symbols, {len(coded):,} bytes = "
              f"{len(coded) / shannon_bytes(gaps):.4f} x Shannon, {8 * len(coded) / n:.3f} bits/position, "
              f"encode {g_enc:.4f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="number of symbols")
    parser.add_argument("--repeat", type=int, default=5, help="timing repetitions (best is reported)")
    args = parser.parse_args()
    run(args.n, args.repeat)


if __name__ == "__main__":
    main()
