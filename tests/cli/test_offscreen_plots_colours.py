"""Sensitivity PNGs: with more layers than the palette has colours, every curve still gets its own."""

from __future__ import annotations

from squeezestudio.cli.offscreen_plots import PALETTE, curve_colour


def test_every_curve_has_its_own_colour_beyond_the_palette():
    for count in (3, len(PALETTE), 26, 60):
        colours = [curve_colour(i, count) for i in range(count)]
        assert len(set(colours)) == count
    assert curve_colour(2, 5) == PALETTE[2]  # few curves keep the familiar palette
