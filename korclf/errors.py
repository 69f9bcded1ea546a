"""One exception type for every input problem korclf detects.

Anything the user can fix (a file, a row, a column, a config key) raises
:class:`KorclfError` with a message that names it. The CLI prints the message
alone, without a traceback, and exits with status 2.
"""


class KorclfError(ValueError):
    """A problem with the user's input or configuration, described in one message."""


def where(file=None, row=None, column=None) -> str:
    """Format the location of a problem as ``file 'x', row 3, column 'text'``.

    Rows are counted from 1 for the first data row (the header is not counted).
    """
    parts = []
    if file is not None:
        parts.append(f"file '{file}'")
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column '{column}'")
    return ", ".join(parts)
