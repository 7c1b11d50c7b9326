"""Recipients with merge data from a spreadsheet: parse a CSV into per-recipient rows, pure (no ORM, no I/O).

Format: a header row with an ``email`` column (``e-mail`` too, any case), an optional ``name`` column
(the display name in ``To:``, and the ``name`` field too), and any other columns: each becomes a
field of that recipient's own merge data (an empty cell leaves the shared value in place).
Encodings: UTF-8 with or without a BOM, else CP949 (a superset of EUC-KR, what Korean Excel writes
by default). Separators: comma, semicolon or tab, read off the header. Line numbers in errors are
the file's own (the header is line 1), so a person can find the row in the spreadsheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from reservemail.exceptions import ReservemailError
from tasks.recipients import Recipient, StoredRecipient
from tasks.validation import clean_address, clean_name

EMAIL_COLUMNS = frozenset({"email", "e-mail"})
NAME_COLUMN = "name"
MAX_ERRORS_SHOWN = 20
ENCODINGS = ("utf-8", "cp949")


@dataclass(frozen=True)
class CsvRow:
    """One recipient read from the file: the line its row starts on, and what it holds."""

    line: int
    address: str
    name: str
    fields: dict[str, str]

    def recipient(self) -> Recipient:
        return Recipient(address=self.address, name=self.name, context=self.fields)


@dataclass
class CsvImport:
    """What a file gave: its encoding, columns, recipients (duplicates merged) and errors by line."""

    encoding: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[CsvRow] = field(default_factory=list)
    errors: list[tuple[int | None, str]] = field(default_factory=list)
    duplicates: int = 0

    @property
    def field_columns(self) -> list[str]:
        """The columns that become merge fields (all but the address column)."""
        return [c for c in self.columns if c.lower() not in EMAIL_COLUMNS]

    def recipients(self) -> list[StoredRecipient]:
        return [row.recipient().as_stored() for row in self.rows]

    def error_lines(self) -> list[str]:
        """The errors as people read them, at most MAX_ERRORS_SHOWN and a count of the rest."""
        shown = [
            _("Line %(line)d: %(error)s") % {"line": line, "error": error} if line else error
            for line, error in self.errors[:MAX_ERRORS_SHOWN]
        ]
        rest = len(self.errors) - MAX_ERRORS_SHOWN
        if rest > 0:
            shown.append(ngettext("…and %(n)d more error.", "…and %(n)d more errors.", rest) % {"n": rest})
        return shown


@dataclass(frozen=True)
class FieldMapping:
    """Which template variables the file covers, which the shared values cover, which nothing does,
    and which columns the template does not use."""

    from_columns: list[str]
    from_shared: list[str]
    missing: list[str]
    unused_columns: list[str]


def decode(data: bytes) -> tuple[str, str]:
    """The text of ``data`` and the encoding it was read with; ValueError if it is none of ENCODINGS."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise ValueError(_("The file is neither UTF-8 nor CP949/EUC-KR text. Save it as “CSV UTF-8” and try again."))


def _dialect(header_line: str) -> str:
    counts = {sep: header_line.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def parse_csv(data: bytes | str, *, max_recipients: int) -> CsvImport:
    """Read a recipients file; every problem is an error with its line number, nothing is raised."""
    result = CsvImport()
    if isinstance(data, bytes):
        try:
            text, result.encoding = decode(data)
        except ValueError as exc:
            result.errors.append((None, str(exc)))
            return result
    else:
        text, result.encoding = data.removeprefix("\ufeff"), "utf-8"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_dialect(text.split("\n", 1)[0]))
    try:
        _read(reader, result, max_recipients)
    except csv.Error as exc:
        result.errors.append((reader.line_num, _("The file is not valid CSV: %(error)s") % {"error": exc}))
    return result


def _read(reader: Any, result: CsvImport, max_recipients: int) -> None:
    header = next(reader, None)
    if header is None:
        result.errors.append((None, _("The file is empty.")))
        return
    result.columns = [column.strip() for column in header]
    if not _header_ok(result):
        return
    email_at = next(i for i, c in enumerate(result.columns) if c.lower() in EMAIL_COLUMNS)
    by_address: dict[str, int] = {}
    line = reader.line_num + 1
    for cells in reader:
        if any(cell.strip() for cell in cells):
            row = _row(cells, line, email_at, result)
            if row is not None:
                _add(row, by_address, result)
        line = reader.line_num + 1
    if not result.rows and not result.errors:
        result.errors.append((None, _("The file has no recipients below its header.")))
    if len(result.rows) > max_recipients:
        result.errors.append(
            (
                None,
                _("At most %(n)d recipients per send; the file has %(count)d.")
                % {"n": max_recipients, "count": len(result.rows)},
            )
        )


def _header_ok(result: CsvImport) -> bool:
    columns = result.columns
    lowered = [c.lower() for c in columns]
    if not any(c in EMAIL_COLUMNS for c in lowered):
        result.errors.append((1, _("The header row needs an “email” column.")))
        return False
    if "" in columns:
        result.errors.append((1, _("Column %(n)d has no name in the header row.") % {"n": columns.index("") + 1}))
        return False
    repeated = {c for c in lowered if lowered.count(c) > 1}
    if sum(c in EMAIL_COLUMNS for c in lowered) > 1:
        repeated.add("email")
    if repeated:
        names = ", ".join(sorted(repeated))
        result.errors.append((1, _("The header row names a column twice: %(names)s.") % {"names": names}))
        return False
    return True


def _row(cells: Sequence[str], line: int, email_at: int, result: CsvImport) -> CsvRow | None:
    if len(cells) > len(result.columns):
        result.errors.append(
            (line, _("%(n)d cells, but the header has %(m)d columns.") % {"n": len(cells), "m": len(result.columns)})
        )
        return None
    values = {column: (cells[i].strip() if i < len(cells) else "") for i, column in enumerate(result.columns)}
    raw_address = values.pop(result.columns[email_at])
    if not raw_address:
        result.errors.append((line, _("The email cell is empty.")))
        return None
    try:
        address = clean_address(raw_address)
        name = clean_name(next((v for c, v in values.items() if c.lower() == NAME_COLUMN), ""))
    except ReservemailError as exc:
        result.errors.append((line, exc.message))
        return None
    fields = {column: value for column, value in values.items() if value}
    return CsvRow(line=line, address=address, name=name, fields=fields)


def _add(row: CsvRow, by_address: dict[str, int], result: CsvImport) -> None:
    """Append ``row``, or merge it into the earlier row of the same address (its non-empty cells win)."""
    key = row.address.lower()
    if key not in by_address:
        by_address[key] = len(result.rows)
        result.rows.append(row)
        return
    index = by_address[key]
    earlier = result.rows[index]
    result.rows[index] = CsvRow(
        line=earlier.line,
        address=earlier.address,
        name=row.name or earlier.name,
        fields={**earlier.fields, **row.fields},
    )
    result.duplicates += 1


def field_mapping(columns: Iterable[str], variables: Sequence[str], shared: Iterable[str]) -> FieldMapping:
    """How a template's ``variables`` are filled: from a file's field ``columns``, from ``shared`` values, or not."""
    columns = [c for c in columns if c.lower() not in EMAIL_COLUMNS]
    shared_names = set(shared)
    return FieldMapping(
        from_columns=[v for v in variables if v in columns],
        from_shared=[v for v in variables if v not in columns and v in shared_names],
        missing=[v for v in variables if v not in columns and v not in shared_names],
        unused_columns=[c for c in columns if c not in variables],
    )
