"""``sweep --x/--y/--color``: the PNG, the printed stars and the CSV all follow the chosen pair."""

from __future__ import annotations

import csv
import io

from PIL import Image

from squeezestudio.cli.main import main
from squeezestudio.cli.offscreen_plots import HEIGHT, VIRIDIS, WIDTH, _log_ticks
from squeezestudio.core.io.demo_files import demo_model_path

DEMO = str(demo_model_path())
LENET = str(demo_model_path("lenet300_100"))


def _run(capsys, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _rows(path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _starred(out: str) -> set[str]:
    """Labels of the table lines that end in the frontier's star."""
    return {line[:45].strip() for line in out.splitlines() if line.rstrip().endswith("*")}


def _brute_front(points: dict[str, tuple[float, float]], x_small: bool, y_large: bool,
                 guessing: set[str] = frozenset()) -> set[str]:
    """Labels no other point dominates (at least as good on both, better on one), by brute force.

    Of exact duplicates the first counts (the original and "cluster off" are one model); ``guessing``
    (models at chance) are never on the frontier.
    """
    def dominates(q, p):
        bx = q[0] <= p[0] if x_small else q[0] >= p[0]
        by = q[1] >= p[1] if y_large else q[1] <= p[1]
        return bx and by and q != p
    labels = [k for k in points if k not in guessing]
    return {k for i, k in enumerate(labels)
            if not any(dominates(points[j], points[k]) for j in labels if j != k)
            and points[k] not in [points[j] for j in labels[:i]]}


def _guessing(rows: list[dict[str, str]]) -> set[str]:
    """Rows no better than guessing one of ten digits (10% +- sampling noise: below 20% here)."""
    return {r["label"] for r in rows if float(r["top1"]) < 0.2}


def test_a_non_default_pair_draws_and_stars_its_own_frontier(capsys, tmp_path):
    out_csv, png = tmp_path / "s.csv", tmp_path / "s.png"
    out = _run(capsys, "sweep", DEMO, "--grid", "cluster.bits=none,2,4", "-o", str(out_csv),
               "--x", "top5", "--y", "size_bytes", "--color", "agreement")
    assert "Pareto frontier of size_bytes against top5" in out
    rows = _rows(out_csv)
    points = {r["label"]: (float(r["top5"]), float(r["size_bytes"])) for r in rows}
    expected = _brute_front(points, False, False, _guessing(rows))  # accuracy: larger better; size: smaller
    assert {r["label"] for r in rows if r["pareto"] == "True"} == expected == _starred(out)
    with Image.open(png) as image:
        assert image.size == (WIDTH, HEIGHT)
        colours = {c for _, c in image.convert("RGB").getcolors(WIDTH * HEIGHT)}
    assert VIRIDIS[0] in colours and VIRIDIS[-1] in colours  # the colour bar's two ends
    # the default pair (size, top-1) on the same rows (resumed) stars another set: 4 bits keep top-5, not top-1
    default = _run(capsys, "sweep", DEMO, "--grid", "cluster.bits=none,2,4", "-o", str(out_csv),
                   "--png", str(tmp_path / "default.png"))
    by_top1 = {r["label"]: (float(r["size_bytes"]), float(r["top1"])) for r in rows}
    assert _starred(default) == _brute_front(by_top1, True, True, _guessing(rows)) != expected


def test_a_latency_axis_without_latency_is_one_sentence_before_any_work(capsys, tmp_path):
    code = main(["sweep", DEMO, "--grid", "cluster.bits=4", "-o", str(tmp_path / "s.csv"),
                 "--color", "latency_onnx-int8_b1_ms"])
    err = capsys.readouterr().err
    assert code == 2 and "--latency" in err and "--color latency_onnx-int8_b1_ms" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "s.csv").exists()


def test_sweep_latency_times_every_row_and_a_resumed_sweep_times_them_again(capsys, tmp_path):
    out_csv = tmp_path / "lat.csv"
    argv = ["sweep", LENET, "--grid", "quantize.bits=none,4", "-o", str(out_csv), "--latency", "--repeats", "2",
            "--latency-batch", "2", "--x", "latency_onnx-int8_b1_ms", "--y", "top1"]
    for attempt in range(2):
        out = _run(capsys, *argv)
        rows = _rows(out_csv)
        assert len(rows) == 3 and all(float(r["latency_onnx-int8_b1_ms"]) > 0 < float(r["latency_onnx_b1_ms"])
                                      for r in rows)
        points = {r["label"]: (float(r["latency_onnx-int8_b1_ms"]), float(r["top1"])) for r in rows}
        assert _starred(out) == _brute_front(points, True, True, _guessing(rows))
    assert "resumed 3 point(s)" in out


def test_compress_latency_prints_both_exports(capsys, tmp_path):
    out = _run(capsys, "compress", DEMO, "--quant-bits", "4", "--data", "none", "--latency", "--repeats", "2",
               "--latency-batch", "2", "-o", str(tmp_path / "q.sqz"))
    assert "float ONNX:" in out and "int8 ONNX:" in out and "1 thread(s)" in out


def test_log_ticks_cover_the_range_on_round_sizes():
    import math

    low, high = math.log10(31_652), math.log10(349_976)
    ticks = _log_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and 3 <= len(ticks) <= 10
    assert [round(10 ** t) for t in ticks] == [20_000, 50_000, 100_000, 200_000, 500_000]
