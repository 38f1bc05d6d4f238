"""One table of export formats: every format has a writer, file names map back to it, the GUI shows the same."""

from __future__ import annotations

from squeezestudio.core.io.export_formats import EXPORT_FORMATS, format_for_path, output_path
from squeezestudio.core.io.exports import WRITERS


def test_every_format_has_exactly_one_writer() -> None:
    assert set(WRITERS) == set(EXPORT_FORMATS)


def test_a_written_file_name_says_its_format() -> None:
    for key, fmt in EXPORT_FORMATS.items():
        assert format_for_path(output_path("out", "model", key)) == key
        assert output_path("out", "model", key).name == f"model{fmt.suffix}"
    assert format_for_path("mine.yml") == "recipe" and format_for_path("r.JSON") == "report_json"
    assert format_for_path("notes.txt") is None
