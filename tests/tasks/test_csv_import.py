"""tasks.csv_import: encodings, columns, errors by line, duplicates, the limit, the field mapping. Pure: no database."""

import pytest

from tasks.csv_import import decode, field_mapping, parse_csv

KOREAN = "email,name,회사\nkim@example.com,김민준,한빛\nlee@example.com,이서연,누리\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (KOREAN.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + KOREAN.encode("utf-8"), "utf-8-sig"),
        (KOREAN.encode("cp949"), "cp949"),
        (KOREAN.encode("euc-kr"), "cp949"),
    ],
)
def test_parse_csv_reads_each_encoding_alike(data, encoding):
    result = parse_csv(data, max_recipients=10)
    assert (result.encoding, result.errors, result.duplicates) == (encoding, [], 0)
    assert result.columns == ["email", "name", "회사"]
    assert result.recipients() == [
        {"address": "kim@example.com", "name": "김민준", "context": {"name": "김민준", "회사": "한빛"}},
        {"address": "lee@example.com", "name": "이서연", "context": {"name": "이서연", "회사": "누리"}},
    ]
    assert [row.line for row in result.rows] == [2, 3]


def test_decode_refuses_other_bytes():
    with pytest.raises(ValueError, match="neither UTF-8 nor CP949"):
        decode(b"\xff\xfe\xff\xfe\x00\xff")
    result = parse_csv(b"\xff\xfe\xff\xfe\x00\xff", max_recipients=10)
    assert result.rows == [] and result.errors[0][0] is None


def test_parse_csv_semicolons_crlf_quotes_blank_lines_and_empty_cells():
    data = b'E-Mail;Name;city\r\n"a@example.com";"Doe, Jane";Seoul\r\n\r\nb@example.com;;\r\n'
    result = parse_csv(data, max_recipients=10)
    assert result.errors == []
    assert result.recipients() == [
        {"address": "a@example.com", "name": "Doe, Jane", "context": {"Name": "Doe, Jane", "city": "Seoul"}},
        "b@example.com",
    ]
    assert [row.line for row in result.rows] == [2, 4]


def test_parse_csv_reports_bad_rows_by_line_and_keeps_good_ones():
    data = "email,name,note\nok@example.com,Ok,\nnot-an-address,Bad,\n,Empty,\nx@example.com,X,a,b\n"
    result = parse_csv(data.encode(), max_recipients=10)
    assert [row.address for row in result.rows] == ["ok@example.com"]
    assert [line for line, _ in result.errors] == [3, 4, 5]
    assert result.error_lines() == [
        "Line 3: “not-an-address” is not a valid e-mail address.",
        "Line 4: The email cell is empty.",
        "Line 5: 4 cells, but the header has 3 columns.",
    ]


def test_parse_csv_line_numbers_count_quoted_line_breaks():
    data = 'email,note\na@example.com,"two\nlines"\nbad,x\n'
    result = parse_csv(data.encode(), max_recipients=10)
    assert result.errors == [(4, "“bad” is not a valid e-mail address.")]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("name,city", "The header row needs an “email” column."),
        ("email,,city", "Column 2 has no name in the header row."),
        ("email,city,City", "The header row names a column twice: city."),
        ("email,e-mail", "The header row names a column twice: email."),
    ],
)
def test_parse_csv_refuses_bad_headers_on_line_1(header, message):
    result = parse_csv(f"{header}\na@example.com,x,y\n".encode(), max_recipients=10)
    assert (result.rows, result.errors) == ([], [(1, message)])


def test_parse_csv_empty_file_and_header_only():
    assert parse_csv(b"", max_recipients=10).errors == [(None, "The file is empty.")]
    assert parse_csv(b"email,name\n", max_recipients=10).errors == [
        (None, "The file has no recipients below its header.")
    ]


def test_parse_csv_merges_duplicates_case_insensitively_and_counts_them():
    data = "email,name,city\nA@example.com,Ann,Seoul\nb@example.com,Bo,\na@EXAMPLE.com,,Busan\nB@example.com,Bob,\n"
    result = parse_csv(data.encode(), max_recipients=10)
    assert result.duplicates == 2
    assert result.recipients() == [
        {"address": "A@example.com", "name": "Ann", "context": {"name": "Ann", "city": "Busan"}},
        {"address": "b@example.com", "name": "Bob", "context": {"name": "Bob"}},
    ]


def test_parse_csv_applies_the_recipient_limit_after_merging():
    rows = "".join(f"r{i}@example.com\n" for i in range(3))
    assert parse_csv(f"email\n{rows}r0@example.com\n".encode(), max_recipients=3).errors == []
    result = parse_csv(f"email\n{rows}".encode(), max_recipients=2)
    assert result.errors == [(None, "At most 2 recipients per send; the file has 3.")]


def test_error_lines_are_capped():
    data = "email\n" + "bad\n" * 25
    lines = parse_csv(data.encode(), max_recipients=100).error_lines()
    assert len(lines) == 21 and lines[0].startswith("Line 2: ") and lines[-1] == "…and 5 more errors."


def test_field_mapping_names_covered_shared_missing_and_unused():
    mapping = field_mapping(["email", "name", "city", "회사"], ["name", "site_name", "message"], {"site_name"})
    assert mapping.from_columns == ["name"]
    assert mapping.from_shared == ["site_name"]
    assert mapping.missing == ["message"]
    assert mapping.unused_columns == ["city", "회사"]
