"""Use cases of text projects: import prompt/response pairs, export preferences for TRL.

Import reads CSV or JSON Lines (chosen by the file's extension) in one of two layouts:

* ``prompt, response_a, response_b``: pairs to label. Each response becomes an item
  (prompt + text, no trajectory) and each line a query pairing the two.
* ``prompt, chosen, rejected``: pairs already labeled (TRL's preference format): the same,
  plus a label with ``pref`` = P(item A preferred) recorded under the annotator ``import``.

Every line is checked before anything is written: a file with a bad line imports nothing,
and the error lists the bad lines by number and field. The rows are then written in one
write transaction. Items are deduplicated by (prompt, text) and queries by pair, so
importing the same file again adds nothing.

Export writes a text project's strict preferences (left/right answers) as TRL's
``prompt, chosen, rejected`` rows, one row per label; ties and can't-tell answers go to a
sibling file ``NAME.ties.EXT`` with ``prompt, response_a, response_b, choice, annotator``.
"""

from __future__ import annotations

import codecs
import csv
import enum
import io
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from app.config import Studio
from db import names, repo
from db.engine import parse_database_url, refresh_statistics, session_scope
from db.models import Choice, ProjectKind, as_utc
from rlhf_core.errors import InvalidInputError, StudioError
from rlhf_core.fileio import write_bytes_atomic

#: Name and role of the annotator that labels of ``prompt, chosen, rejected`` files are recorded under.
IMPORT_ANNOTATOR = names.IMPORT_ANNOTATOR
IMPORT_ROLE = "import"
#: How many problems an import error lists before it only counts the rest.
MAX_PROBLEMS_SHOWN = 20
#: Import formats by file extension.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
EXPORT_FORMATS = ("jsonl", "csv", "parquet")
#: First characters that make a spreadsheet read a CSV cell as a formula (OWASP: CSV injection);
#: export writes such cells with a leading ``'``, which spreadsheets show as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: The shipped demo: pairs to label, and a few pairs already labeled.
DEMO_DIR = Path(__file__).resolve().parents[1] / "data"
DEMO_FILES = (DEMO_DIR / "demo_text_pairs.jsonl", DEMO_DIR / "demo_text_labeled.jsonl")

# Responses can be long; the csv module refuses fields over 128 KiB by default.
csv.field_size_limit(max(csv.field_size_limit(), 1 << 24))

TEXT_GUIDELINES = """\
### What to compare
One prompt and two responses to it, side by side. Pick the response that **answers the
prompt better**: correct, helpful, honest and safe, then clear and concise.

* Text is shown exactly as written: markup (HTML, Markdown) is *not* rendered. A response
  that contains code or markup is judged like any other text.
* **Equal**: both are about as good (or as bad). **Can't tell**: you cannot judge them
  (you lack the knowledge, the prompt is unclear); it is stored but never used for training.

Keys: **1** left better · **2** right better · **3** equal · **4** can't tell · **S** skip · **U** undo.
"""


class Layout(enum.StrEnum):
    """What the lines of an import file hold."""

    pairs = "pairs"
    """``prompt, response_a, response_b``: pairs to label."""
    labeled = "labeled"
    """``prompt, chosen, rejected``: labeled pairs, the first response preferred."""


LAYOUT_FIELDS = {Layout.pairs: ("prompt", "response_a", "response_b"), Layout.labeled: ("prompt", "chosen", "rejected")}
_EXPECTED = "prompt, response_a, response_b (pairs to label) or prompt, chosen, rejected (labeled pairs)"


class ImportFileError(StudioError):
    """An import file with problems; nothing was imported. ``problems`` lists them (``total``
    counts them all)."""

    def __init__(self, source: str, problems: list[str], *, total: int | None = None) -> None:
        self.source = source
        self.problems = tuple(problems)
        """The problems, in line order (the first :data:`MAX_PROBLEMS_KEPT` of a file with more)."""
        self.total = len(problems) if total is None else total
        shown = "\n".join(f"  {p}" for p in problems[:MAX_PROBLEMS_SHOWN])
        more = self.total - MAX_PROBLEMS_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        if self.total == 1:  # one line, as the CLI prints it
            super().__init__(f"{source}: 1 problem, nothing imported; fix the file and import it again: {problems[0]}")
            return
        super().__init__(
            f"{source}: {self.total} problems, nothing imported; fix the file and import it again:\n{shown}{tail}"
        )


@dataclass(frozen=True)
class TextPairRow:
    """One line of an import file: a prompt and two different responses to it."""

    line: int
    """Line number in the file (1-based; the line a CSV record starts on)."""
    prompt: str
    first: str
    """``response_a``, or ``chosen`` (preferred) in a labeled file."""
    second: str
    """``response_b``, or ``rejected`` in a labeled file."""

    def __post_init__(self) -> None:
        if self.first == self.second:
            raise ValueError(f"line {self.line}: a pair needs two different responses")


@dataclass(frozen=True)
class ParsedFile:
    """A checked import file."""

    source: str
    """The file's name, as errors and results name it."""
    layout: Layout
    rows: tuple[TextPairRow, ...]


# --- parsing -------------------------------------------------------------------------------


def parse_text_file(data: bytes, filename: str) -> ParsedFile:
    """Read and check every line of a CSV or JSON Lines file of text pairs held in memory.

    Raises ImportFileError listing every bad line (number and field) when any line is bad.
    (Imports do not hold the rows: :func:`check_text_source` checks a file line by line.)
    """
    source = _Source(filename, data=data)
    layout = check_text_source(source).layout
    return ParsedFile(source.name, layout, tuple(_rows(source, layout)))


class _Source:
    """An import file, from a path or from bytes, that can be read more than once (a check,
    then the write) without holding it in memory."""

    def __init__(
        self, filename: str, *, path: Path | None = None, data: bytes | None = None, fmt: str | None = None
    ) -> None:
        self.name = Path(filename).name or filename
        self.path, self.data = path, data
        self.format = fmt or FORMATS.get(Path(self.name).suffix.lower())
        if self.format is None:
            known = ", ".join(sorted(FORMATS))
            raise ImportFileError(
                self.name, [f"{self.name}: unknown file type; name it with one of {known} (CSV or JSON Lines)"]
            )

    def open(self) -> IO[bytes]:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        try:
            return self.path.open("rb")
        except OSError as exc:
            raise ImportFileError(self.name, [f"cannot read {self.path}: {exc.strerror}"]) from exc


@dataclass(frozen=True)
class FileCheck:
    """What checking an import file found: its layout and how many pairs it holds."""

    source: str
    layout: Layout
    lines: int


#: Problems an ImportFileError keeps (a file of a million bad lines would otherwise fill memory);
#: the count of all of them is kept too.
MAX_PROBLEMS_KEPT = 10_000


class _Problems:
    """The problems of a file, in line order, keeping the first :data:`MAX_PROBLEMS_KEPT`."""

    def __init__(self) -> None:
        self.kept: list[str] = []
        self.total = 0

    def add(self, problem: str) -> None:
        self.total += 1
        if len(self.kept) < MAX_PROBLEMS_KEPT:
            self.kept.append(problem)


def check_text_source(source: _Source) -> FileCheck:
    """Check every line of an import file, one line at a time (memory does not grow with the
    file, except for one small key per labeled pair, to find contradictions).

    Raises ImportFileError listing every bad line (number and field) when any line is bad.
    """
    problems = _Problems()
    layout: Layout | None = None
    lines = 0
    seen_pairs: dict[bytes, int] = {}  # labeled files: the pair's key -> 2 * line + (chosen sorts first)
    with source.open() as stream:
        for line, record, problem in _records(stream, source):
            if problem is not None:
                problems.add(problem)
                continue
            assert record is not None
            if layout is None:
                layout, problem = _layout(list(record), line, source.name)
                if problem is not None:
                    problems.add(problem)
                if layout is None:
                    break
            values, record_problems = _check_record(record, LAYOUT_FIELDS[layout], line, source.name)
            for problem in record_problems:
                problems.add(problem)
            if values is None:
                continue
            if layout is Layout.labeled:  # the same pair answered both ways cannot be imported
                prompt, first, second = values
                low, high = sorted((first, second))
                mark = 2 * line + (first == low)
                earlier = seen_pairs.setdefault(repo.text_key(prompt, low, high), mark)
                if earlier % 2 != mark % 2:
                    problems.add(
                        f"line {line} of {source.name}: contradicts line {earlier // 2} (same prompt and responses, "
                        "chosen and rejected swapped); keep one of the two lines"
                    )
                    continue
            lines += 1
    if problems.total:
        raise ImportFileError(source.name, sorted(problems.kept, key=_line_of), total=problems.total)
    if layout is None or lines == 0:
        raise ImportFileError(source.name, [f"{source.name} holds no pairs; expected the fields {_EXPECTED}"])
    return FileCheck(source.name, layout, lines)


def _rows(source: _Source, layout: Layout) -> Iterator[TextPairRow]:
    """The pairs of a checked file, in order, read line by line."""
    fields = LAYOUT_FIELDS[layout]
    with source.open() as stream:
        for line, record, _problem in _records(stream, source):
            if record is not None:
                yield TextPairRow(line, *(record[name] for name in fields))


def _line_of(problem: str) -> int:
    """The line number a problem message starts with, for sorting (0 when it names none)."""
    head = problem.split(" ", 2)
    return int(head[1]) if len(head) > 1 and head[0] == "line" and head[1].isdigit() else 0


_Record = tuple[int, dict[str, Any] | None, str | None]


def _records(stream: IO[bytes], source: _Source) -> Iterator[_Record]:
    """(line, record, None) for each record of the file and (line, None, problem) for each bad one."""
    lines = _decoded_lines(stream, source.name)
    if source.format == "csv":
        yield from _csv_records(lines, source.name)
    else:
        yield from _jsonl_records(lines, source.name)


def _decoded_lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, None) per line of a UTF-8 file (a leading byte order mark dropped),
    or (line number, None, problem) for a line that is not UTF-8."""
    offset = 0
    for number, raw in enumerate(stream, start=1):
        start = 3 if number == 1 and raw.startswith(codecs.BOM_UTF8) else 0
        try:
            yield number, raw[start:].decode("utf-8"), None
        except UnicodeDecodeError as exc:
            yield (
                number,
                None,
                f"line {number} of {name}: not UTF-8 text (byte {offset + start + exc.start}); save the file as UTF-8",
            )
        offset += len(raw)


def _csv_records(lines: Iterator[tuple[int, str | None, str | None]], source: str) -> Iterator[_Record]:
    """The records of a CSV file, each with the line it starts on; the header first checked."""
    failure: list[str] = []

    def texts() -> Iterator[str]:
        for _number, text, problem in lines:
            if problem is not None:  # a CSV record may span lines: stop at the first undecodable one
                failure.append(problem)
                return
            yield text or ""

    reader = csv.reader(texts())
    first: list[str] | None = []
    try:
        while first is not None and not any(h.strip() for h in first):  # blank lines before the header
            first = next(reader, None)
    except csv.Error as exc:
        line = reader.line_num or 1
        yield line, None, f"line {line} of {source}: malformed CSV header ({_csv_problem(exc)})"
        return
    if first is None:
        yield from ((0, None, p) for p in failure)
        return
    at = reader.line_num
    header = [h.strip() for h in first]
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        names = ", ".join(repr(h) for h in twice)
        yield at, None, f"line {at} of {source}: the header names the column(s) {names} more than once; keep one each"
        return
    layout, problem = _layout(header, at, source)
    if layout is not None:
        absent = [name for name in LAYOUT_FIELDS[layout] if name not in header]
        if absent:
            names = ", ".join(repr(name) for name in absent)
            found = ", ".join(repr(name) for name in header)
            problem = f"line {at} of {source}: the header lacks the column(s) {names} (found: {found})"
    if problem is not None:
        yield at, None, problem
        return
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problem = f"malformed CSV ({_csv_problem(exc)}); quote cells that hold line breaks"
            yield start, None, f"line {start} of {source}: {problem}"
            break
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        if len(row) > len(header):
            yield (
                line,
                None,
                (
                    f"line {line} of {source}: {len(row)} cells but the header has {len(header)}; "
                    'quote cells that contain commas ("a, b")'
                ),
            )
            continue
        yield line, {name: cell for name, cell in zip(header, row, strict=False)}, None
    for problem in failure:
        yield 0, None, problem


def _csv_problem(exc: csv.Error) -> str:
    """What the csv module's complaint means for the person who wrote the file."""
    if "new-line character seen in unquoted field" in str(exc):
        return (
            "a carriage return (CR) outside quotes: save a file whose lines end in a lone CR with LF or CRLF "
            "line ends, and quote a cell that holds one"
        )
    return str(exc)


def _jsonl_records(lines: Iterator[tuple[int, str | None, str | None]], source: str) -> Iterator[_Record]:
    """Records of a JSON Lines file (one object per line; blank lines ignored)."""
    first = True
    # Lines split at "\n" only: JSON strings may hold U+2028 and other line separators.
    for number, text, problem in lines:
        if problem is not None:
            yield number, None, problem
            continue
        raw = (text or "").strip()
        if not raw:
            continue
        if first and raw.startswith("["):
            yield number, None, f"{source} holds a JSON array; write one JSON object per line (JSON Lines) instead"
            return
        first = False
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield number, None, f"line {number} of {source}: invalid JSON ({exc.msg} at column {exc.colno})"
            continue
        except RecursionError:
            yield (
                number,
                None,
                (
                    f"line {number} of {source}: JSON nested too deeply (arrays or objects inside one another "
                    "hundreds of levels deep); write the fields as plain strings"
                ),
            )
            continue
        except ValueError as exc:  # e.g. a number of more digits than Python converts
            yield number, None, f"line {number} of {source}: invalid JSON ({str(exc).split(':')[0]})"
            continue
        if not isinstance(value, dict):
            yield (
                number,
                None,
                (f"line {number} of {source}: must be a JSON object with fields {_EXPECTED}, got {_json_type(value)}"),
            )
            continue
        yield number, value, None


def _layout(names: list[str], line: int, source: str) -> tuple[Layout | None, str | None]:
    """The layout of a file, from a CSV file's header or the fields of its first JSON object."""
    fields = set(names)
    labeled = fields & {"chosen", "rejected"}
    pairs = fields & {"response_a", "response_b"}
    if labeled and pairs:
        return None, (
            f"line {line} of {source}: has both chosen/rejected and response_a/response_b fields; "
            "use one layout per file"
        )
    if labeled:
        return Layout.labeled, None
    if pairs:
        return Layout.pairs, None
    found = ", ".join(sorted(map(repr, fields))) or "none"
    return None, f"line {line} of {source}: expected the fields {_EXPECTED}; found: {found}"


def _check_record(
    record: dict[str, Any], fields: tuple[str, str, str], line: int, source: str
) -> tuple[tuple[str, str, str] | None, list[str]]:
    """The (prompt, first, second) of one record, or the problems with its fields."""
    problems = []
    for name in fields:
        where = f"line {line} of {source}: field {name!r}"
        if name not in record:
            problems.append(f"{where} is missing")
        elif not isinstance(record[name], str):
            problems.append(f"{where} must be a string, got {_json_type(record[name])}")
        elif not record[name].strip():
            problems.append(f"{where} is empty")
        elif (at := _lone_surrogate(record[name])) is not None:
            problems.append(
                f"{where} holds a lone surrogate ({ascii(record[name][at])} at character {at + 1}), which is not "
                "text; fix the \\u escape (a character above U+FFFF is written as a pair, e.g. \\ud83d\\ude00)"
            )
        elif (nul := record[name].find("\x00")) >= 0:  # PostgreSQL's text cannot hold it; no text needs it
            problems.append(f"{where} holds a NUL character (U+0000 at character {nul + 1}); remove it")
    if problems:
        return None, problems
    prompt, first, second = (record[name] for name in fields)
    if first == second:
        return None, [
            f"line {line} of {source}: fields {fields[1]!r} and {fields[2]!r} are identical; "
            "a pair needs two different responses"
        ]
    return (prompt, first, second), []


def _lone_surrogate(text: str) -> int | None:
    """Index of the first lone surrogate (U+D800..U+DFFF) in ``text``, which UTF-8 cannot hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- import --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    """What an import added to a text project."""

    project: str
    created: bool
    """The project did not exist and was created (kind text)."""
    source: str
    layout: Layout
    lines: int
    """Pairs read from the file."""
    items_added: int
    """New responses (prompt + text); the others were in the project already."""
    pairs_added: int
    pairs_present: int
    """Lines whose pair the project held already (or an earlier line of the file had)."""
    labels_added: int
    labels_present: int
    """Lines whose pair already had an import label with the same answer."""
    labels_conflicting: int
    """Lines whose pair already had an import label with the other answer; the stored one is kept."""


#: Rows an import adds beyond which the database's planner statistics are refreshed at once.
BULK_ROWS = 10_000
#: Lines an import writes per batch of inserts.
IMPORT_CHUNK = 5_000


def import_text_pairs(
    studio: Studio,
    project_name: str,
    data: bytes,
    filename: str,
    *,
    rng: np.random.Generator | None = None,
) -> ImportResult:
    """Import a CSV or JSON Lines file of text pairs held in memory (an upload): see
    :func:`import_text_file`."""
    return _import(studio, project_name, _Source(filename, data=data), rng)


def import_text_file(
    studio: Studio, project_name: str, path: Path, *, rng: np.random.Generator | None = None
) -> ImportResult:
    """Import a CSV or JSON Lines file of text pairs into a text project (created if missing).

    All or nothing: every line is checked first (ImportFileError lists the bad ones), then
    everything is written in one transaction. The file is read line by line, twice (the
    check, then the write in batches of :data:`IMPORT_CHUNK` lines), so memory grows only
    with a few small keys per pair, not with the text: a million pairs import in well under
    a gigabyte. Within each batch new responses are stored in a random order (``rng``), so
    item A of a query (the lower id) is the first response of a line only half of the time,
    and imported preferences are not all 1. A FIFO or a device is refused (it would never end).
    """
    try:
        if not stat.S_ISREG(Path(path).stat().st_mode):
            raise ImportFileError(
                Path(path).name, [f"{path} is not a regular file; import reads CSV or JSON Lines files"]
            )
    except OSError as exc:
        raise ImportFileError(Path(path).name, [f"cannot read {path}: {exc.strerror}"]) from exc
    return _import(studio, project_name, _Source(Path(path).name, path=Path(path)), rng)


def _import(studio: Studio, project_name: str, source: _Source, rng: np.random.Generator | None) -> ImportResult:
    name = names.project_name(project_name)
    checked = check_text_source(source)
    rng = rng if rng is not None else np.random.default_rng(0)
    with session_scope(studio.engine, write=True) as session:
        project = repo.find_project(session, name)
        created = project is None
        if project is None:
            project = repo.create_project(
                session, name=name, kind=ProjectKind.text, env_id=None, config={}, guidelines=TEXT_GUIDELINES
            )
        elif project.kind is not ProjectKind.text:
            raise InvalidInputError(
                f"project {name!r} is a {project.kind.value} project (clips); text pairs go into a text "
                "project: choose another name, and the import creates it"
            )
        writer = repo.TextImport(session, project.id, labeled=checked.layout is Layout.labeled)
        chunk: list[tuple[str, str, str]] = []
        for row in _rows(source, checked.layout):
            chunk.append((row.prompt, row.first, row.second))
            if len(chunk) == IMPORT_CHUNK:
                writer.add(chunk, rng)
                chunk = []
        if chunk:
            writer.add(chunk, rng)
        counts = writer.finish()
    if counts.pairs_added + counts.labels_added >= BULK_ROWS:
        refresh_statistics(studio.engine)
    return ImportResult(
        project=name,
        created=created,
        source=checked.source,
        layout=checked.layout,
        lines=checked.lines,
        items_added=counts.items_added,
        pairs_added=counts.pairs_added,
        pairs_present=checked.lines - counts.pairs_added,
        labels_added=counts.labels_added,
        labels_present=counts.labels_present,
        labels_conflicting=counts.labels_conflicting,
    )


def create_text_demo(studio: Studio, name: str = "text-demo") -> list[ImportResult]:
    """Import the shipped demo files (pairs to label, a few labeled pairs) into project ``name``.

    Idempotent: a second run adds nothing.
    """
    return [import_text_file(studio, name, path) for path in DEMO_FILES]


def create_team_demo(studio: Studio, name: str = "team-demo", *, pairs: int = 600, seed: int = 0) -> ImportResult:
    """A text project for a team whose tastes conflict: ``pairs`` pairs of reviews written
    casually or formally, one to four sentences long (label them with the personas:
    ``rlhf label-synthetic --teacher concise --annotator ann``...). Idempotent for a seed."""
    import json

    from rlhf_core.demo_data.text import styled_responses

    rng = np.random.default_rng(seed)
    items = styled_responses(2 * pairs, rng)
    lines = [
        json.dumps({"prompt": a[0], "response_a": a[1], "response_b": b[1]})
        for a, b in zip(items[::2], items[1::2], strict=True)
        if a[1] != b[1]
    ]
    return import_text_pairs(studio, name, ("\n".join(lines) + "\n").encode(), "team-demo.jsonl", rng=rng)


def describe_import(result: ImportResult) -> str:
    """One line saying what an import did, for the CLI and the app."""
    verb = "created" if result.created else "extended"
    parts = [
        f"{result.source} -> text project {result.project!r} ({verb}): {result.lines} pairs read",
        f"{result.items_added} new responses",
        f"{result.pairs_added} new pairs, {result.pairs_present} already present",
    ]
    if result.layout is Layout.labeled:
        labels = (
            f"{result.labels_added} labels added (annotator {IMPORT_ANNOTATOR!r}), "
            f"{result.labels_present} already present"
        )
        if result.labels_conflicting:
            labels += f", {result.labels_conflicting} kept as stored (the store had the other answer)"
        parts.append(labels)
    return ", ".join(parts)


# --- export --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    """The files an export wrote and how many rows each holds."""

    path: Path
    ties_path: Path
    rows: int
    """``prompt, chosen, rejected`` rows: one per left/right label."""
    ties: int
    """Equal and can't-tell labels, in the ties file."""


def ties_path_for(path: Path, fmt: str) -> Path:
    """The sibling file of ties and can't-tell answers: ``prefs.jsonl`` -> ``prefs.ties.jsonl``."""
    stem = path.stem if path.suffix else path.name
    return path.with_name(f"{stem}.ties.{fmt}")


def format_for(path: Path, fmt: str | None) -> str:
    """The export format: ``fmt`` if given, else from the file's extension (``.csv``, else jsonl)."""
    if fmt is None:
        return {".csv": "csv", ".parquet": "parquet"}.get(path.suffix.lower(), "jsonl")
    if fmt not in EXPORT_FORMATS:
        raise InvalidInputError(f"unknown export format {fmt!r}; use one of: {', '.join(EXPORT_FORMATS)}")
    return fmt


def export_preferences(studio: Studio, project_name: str, path: Path, fmt: str | None = None) -> ExportResult:
    """Write a text project's preferences as TRL ``prompt, chosen, rejected`` rows (one per label).

    Left/right answers go to ``path``; equal and can't-tell answers to :func:`ties_path_for`
    (``prompt, response_a, response_b, choice, annotator``); skips are left out. Both files
    are always written (possibly empty), each atomically, as regular files: a symlink is
    written through to its target; a FIFO, a device or a folder, and the label store itself,
    are refused (InvalidInputError) before anything is written. A new file gets the mode
    the umask allows (0o666 & ~umask), a replaced one keeps its mode. CSV cells that a
    spreadsheet would run as a formula get a leading ``'`` (:data:`FORMULA_STARTS`).
    """
    if not path.name or path.name in (".", ".."):
        raise InvalidInputError(f"-o needs a file name, got {str(path)!r}; e.g. -o prefs.jsonl")
    fmt = format_for(path, fmt)
    ties_path = ties_path_for(path, fmt)
    protected = _store_files(studio)
    targets = [_export_target(p, protected) for p in (path, ties_path)]
    if targets[0] == targets[1]:
        raise InvalidInputError(
            f"{path} and {ties_path} are the same file (a link?); the ties file would overwrite the "
            "preferences: choose another -o"
        )
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        if project.kind is not ProjectKind.text:
            raise InvalidInputError(
                f"project {project_name!r} is a {project.kind.value} project; export writes text preferences "
                "(prompt, chosen, rejected) and works on text projects only"
            )
        judgements = repo.text_judgements(session, project.id)
        rulings = repo.rulings(session, project.id)
        items = repo.items_by_id(session, sorted({i for r in rulings for i in (r.item_a_id, r.item_b_id)}))
    ruled = {r.query_id for r in rulings}
    entries = [(j, "superseded" if j.query_id in ruled else "none") for j in judgements]
    for r in rulings:  # an admin's answer, after the labels it settles
        a, b = items[r.item_a_id], items[r.item_b_id]
        choice = Choice.equal if r.pref == 0.5 else Choice.left
        ruling = repo.TextJudgement(0, a.prompt or "", a.text or "", b.text or "", choice, r.pref, r.by or "")
        entries.append((replace(ruling, answered_at=r.at, query_id=r.query_id), "ruling"))
    # Parquet also carries when each answer was shown and given (typed timestamps)
    stamps = TIMESTAMP_FIELDS if fmt == "parquet" else ()
    rows, ties = [], []
    for j, adjudication in entries:
        who = {"annotator": j.annotator, "adjudication": adjudication, **{k: as_utc(getattr(j, k)) for k in stamps}}
        if j.pref in (0.0, 1.0):
            chosen, rejected = (j.text_a, j.text_b) if j.pref == 1.0 else (j.text_b, j.text_a)
            rows.append({"prompt": j.prompt, "chosen": chosen, "rejected": rejected, **who})
        else:
            ties.append(
                {"prompt": j.prompt, "response_a": j.text_a, "response_b": j.text_b, "choice": j.choice.value, **who}
            )
    tail = ("annotator", "adjudication", *stamps)
    files = (
        (path, targets[0], _encode(rows, ("prompt", "chosen", "rejected", *tail), fmt)),
        (ties_path, targets[1], _encode(ties, ("prompt", "response_a", "response_b", "choice", *tail), fmt)),
    )
    for given, target, data in files:
        try:
            write_bytes_atomic(target, data)
        except OSError as exc:
            raise InvalidInputError(f"cannot write {given}: {exc.strerror or exc}") from exc
    return ExportResult(path, ties_path, len(rows), len(ties))


def _encode(rows: list[dict[str, Any]], fields: tuple[str, ...], fmt: str) -> bytes:
    if fmt == "parquet":
        import pyarrow as pa

        stamp = pa.timestamp("us", tz="UTC")
        return parquet_bytes(rows, pa.schema([(f, stamp if f in TIMESTAMP_FIELDS else pa.string()) for f in fields]))
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    out = io.StringIO()
    # RFC 4180 line ends: the csv module quotes a cell holding "\r" only when "\r" is in the line terminator.
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({name: csv_cell(value) for name, value in row.items()} for row in rows)
    return out.getvalue().encode("utf-8")


#: Columns of an export that hold times (typed timestamps in Parquet).
TIMESTAMP_FIELDS = ("shown_at", "answered_at")


def parquet_bytes(rows: list[dict[str, Any]], schema: Any) -> bytes:
    """``rows`` as a zstd-compressed Parquet file of ``schema`` (a pyarrow schema)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer, compression="zstd")
    return buffer.getvalue()


def csv_cell(value: str) -> str:
    """A CSV cell that a spreadsheet shows as text: ``'`` before a formula's first character."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _export_target(path: Path, protected: set[Path]) -> Path:
    """The regular file an export writes for ``path``: itself, or the file a symlink points to.

    InvalidInputError for anything else (a FIFO, a device node, a folder, the label store).
    """
    target = Path(os.path.realpath(path))  # every symlink followed, a dangling one's too
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:  # a symlink loop, a file where a folder should be, no permission
        raise InvalidInputError(f"cannot write {path}: {exc.strerror or exc}; choose another file") from exc
    if mode is not None and not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
        via = f" (the target of the symlink {path})" if path.is_symlink() else ""
        raise InvalidInputError(
            f"{target}{via} is {kind}; export writes regular files only and never replaces anything else: "
            "choose a file path"
        )
    if target in protected:
        raise InvalidInputError(f"{path} is the label store's database; choose another file for the export")
    return target


def _store_files(studio: Studio) -> set[Path]:
    """The SQLite label store's files (database, journal, WAL, shared memory), which no export replaces."""
    url = parse_database_url(studio.settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database.startswith("file:"):
        return set()
    db = Path(os.path.realpath(url.database))
    return {db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))}
