"""Attendance sheets into the ledger: the file format, the row parser and the set-based ledger writer.

A sheet (CSV in UTF-8 or GBK, XLSX; read by ``app.lib.tabular``) has one row per officer and
course: ID number (matched to an officer of the importer's agency tree), optionally the name (a
cross-check), the course (by its number or exact title; or one course chosen for the whole file),
the date and the hours (both default to the course's). Each bad row is reported with its
spreadsheet row number and the reason — unknown officer, hours not a positive number, date outside
the year or the course, course unknown, duplicate (in the file or already in the ledger) — and a
commit writes all rows or none.

The import is set-based. The file is streamed in chunks: each chunk is parsed off the event loop
(``rows``), judged where no database is needed (cell text, course, date, hours) and staged into a
temporary table (``ledger``: COPY on PostgreSQL, executemany on SQLite). On PostgreSQL a plain CSV
file (no quotes: what Excel and WPS export for attendance sheets) is not split in Python at all
(``plain``): COPY splits it, each distinct (course, date, hours) text is judged once in Python, and a
join stages the rows (~0.3 s of database work instead of ~0.9 s of Python for 100 000 rows, with the
same verdicts and messages). Then a handful of joins (``sql``) judge every row at once — officer by
ID number in the importer's tree, name, twins within the file, lines already in the ledger — and,
when no row failed, one INSERT … SELECT appends the lines in key order and one GROUP BY adds them to
the yearly totals, inside the caller's one transaction. Python memory stays flat whatever the
file's length: the rows live in the database's scratch table, not in the process.

The use cases that drive these are ``app.training.services.imports`` (a sheet) and
``app.training.services.attendance`` (officers typed into a form).
"""
