"""CSV downloads: streamed (their size does not matter) and safe to open in a spreadsheet."""

import csv
from collections.abc import Callable, Iterable

from django.http import StreamingHttpResponse
from django.utils import timezone


def csv_cell(value) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas: quote them."""
    text = str(value)
    return f"'{text}" if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(
    rows: Iterable, columns: list[tuple[str, Callable]], *, name: str
) -> StreamingHttpResponse:
    """``columns`` are (header, value of a row); the file is called NAME-YYYYMMDD-HHMM.csv."""
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow([header for header, _ in columns])
        for row in rows:
            yield writer.writerow([csv_cell(value(row)) for _, value in columns])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    return response
