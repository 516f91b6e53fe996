"""Text tables line up in a terminal's columns, whatever the script of their text."""

from __future__ import annotations

import json

import pytest

from commands.render import _width, cell, output_rows, table


def test_columns_line_up_with_wide_halfwidth_and_combining_characters() -> None:
    """Wide characters (汉字, 全角 punctuation, 한글) take two columns, halfwidth forms one,
    a combining accent none. Halfwidth katakana and combining accents were counted as
    wide and as one column, and pushed the next column out of line."""
    assert [_width(t) for t in ("会议", "（二）", "한국", "ｶﾀｶﾅ", "e\u0301", "·", "A-1")] == [
        4, 6, 4, 4, 1, 1, 3
    ]  # fmt: skip
    rows = [
        {"code": "Z001-WS·2012-D10-BGS-0001", "title": "关于年度工作的报告（二）", "by": "办公室"},
        {"code": "Z1", "title": "ｶﾀｶﾅ 目録", "by": "arch"},
        {"code": "Z2", "title": "re\u0301sume\u0301", "by": "한국"},
    ]
    lines = table(rows, ["code", "title", "by"]).splitlines()
    assert len(lines) == 5
    # Where the last column starts, in display columns, is the same on every line.
    starts = {_width(line[: line.rindex("  ") + 2]) for line in lines}
    assert len(starts) == 1, lines


def test_line_breaks_and_tabs_in_text_stay_on_the_row() -> None:
    """Text may hold tabs and line breaks: in a table a title with a line break was split
    over two lines and a tab pushed the next columns out (found by exploratory testing).
    They are shown as \\n and \\t; JSON and CSV keep the text as it is."""
    rows = [{"title": "第一行\n第二行", "by": "办\t公室"}, {"title": "纪要", "by": "arch"}]
    lines = table(rows, ["title", "by"]).splitlines()
    assert len(lines) == 4
    assert lines[2] == "第一行\\n第二行  办\\t公室"
    assert len({_width(line[: line.rindex("  ") + 2]) for line in lines}) == 1


def test_a_backslash_in_text_is_told_apart_from_an_escaped_line_break() -> None:
    """A title holding a backslash and an n printed as one with a line break did (found by
    exploratory testing): a backslash is shown doubled."""
    rows = [{"title": "lit\\nx"}, {"title": "lit\nx"}, {"title": "C:\\档案"}]
    assert table(rows, ["title"]).splitlines()[2:] == ["lit\\\\nx", "lit\\nx", "C:\\\\档案"]


def test_a_mapping_in_a_table_is_escaped_once() -> None:
    """A correction's changes in `custody` were JSON-escaped, then escaped again by the
    table: a title with a tab read `a\\\\tb`, by the table's rule a backslash and a t
    (exploratory find). In a table a mapping's strings are escaped as every cell's; in
    CSV it is JSON."""
    changes = {"title": "a\tb\nc\\d", "pages": 7}
    row = {"changes": changes}
    assert table([row], ["changes"]).splitlines()[-1] == '{"pages": 7, "title": "a\\tb\\nc\\\\d"}'
    assert cell(changes) == '{"pages": 7, "title": "a\\tb\\nc\\\\d"}'  # JSON, for CSV
    assert json.loads(cell(changes)) == changes


def test_csv_quotes_a_carriage_return_as_it_quotes_a_line_feed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A field holding a CR was written unquoted (the writer quoted only what its "\\n"
    terminator holds) and CSV readers split the row (exploratory find). It is quoted;
    rows still end in "\\n", and a row with neither is written as before."""
    rows = [{"a": "x", "b": 1}, {"a": "函\r号", "b": "甲\r\n乙"}, {"a": 'q"t', "b": "c,d\n"}]
    output_rows(rows, "csv")
    assert capsys.readouterr().out == 'a,b\nx,1\n"函\r号","甲\r\n乙"\n"q""t","c,d\n"\n'


def test_a_flag_reads_as_json_spells_it() -> None:
    """Flags read Python's True and False in CSV cells and tables, true and false in JSON."""
    assert [cell(True), cell(False), cell(True, text=True)] == ["true", "false", "true"]
    assert cell([True, False, "a"]) == "true,false,a"
    assert cell({"late": True}) == '{"late": true}'
    assert table([{"late": False}], ["late"]).splitlines()[-1] == "false"
