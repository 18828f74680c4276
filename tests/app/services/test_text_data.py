"""Import and export of text projects (app/services/text_data.py) and their CLI commands."""

from __future__ import annotations

import csv
import io
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli import cli
from app.config import Settings, Studio
from app.services import text_data
from app.services.agreement import adjudicate
from app.services.text_data import ImportFileError, Layout, export_preferences, import_text_pairs
from db import repo
from db.engine import session_scope
from db.models import Choice, Project, ProjectKind

ROOT = Path(__file__).resolve().parents[3]
TABLES = ("project", "annotator", "item", "query", "label")


@pytest.fixture
def studio(tmp_path: Path, database_url: str):
    """An empty store, on SQLite and on PostgreSQL."""
    studio = Studio(Settings.from_env(tmp_path / "data", database_url))
    studio.engine  # noqa: B018  (an empty, migrated store to compare counts with)
    yield studio
    studio.engine.dispose()


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _labeled(n: int) -> list[dict]:
    return [{"prompt": f"question {i}?", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"} for i in range(n)]


def _counts(studio: Studio) -> dict[str, int]:
    """Rows of each table, read with plain SQL (whatever the database)."""
    with studio.engine.connect() as con:
        return {t: con.exec_driver_sql(f'SELECT COUNT(*) FROM "{t}"').scalar_one() for t in TABLES}


def _rows(studio: Studio, sql: str) -> list[tuple]:
    with studio.engine.connect() as con:
        return [tuple(r) for r in con.exec_driver_sql(sql).fetchall()]


def _problems(studio: Studio, data: bytes, filename: str, project: str = "chat") -> list[str]:
    with pytest.raises(ImportFileError) as caught:
        import_text_pairs(studio, project, data, filename)
    assert "nothing imported" in str(caught.value)
    return list(caught.value.problems)


# --- import ----------------------------------------------------------------------------------


def test_pairs_layout_creates_a_text_project_of_items_and_queries(studio: Studio) -> None:
    data = _jsonl(
        [
            {"prompt": "Capital of France?", "response_a": "Paris.", "response_b": "Lyon."},
            {"prompt": "Capital of France?", "response_a": "Paris.", "response_b": "Marseille.", "id": 7},
            {"prompt": "2 + 2?", "response_a": "4", "response_b": "5"},
        ]
    )
    result = import_text_pairs(studio, "chat", data, "pairs.jsonl")

    assert result.created and result.layout is Layout.pairs
    assert (result.lines, result.items_added, result.pairs_added, result.pairs_present) == (3, 5, 3, 0)
    assert result.labels_added == 0
    assert _rows(studio, "SELECT name, kind, env_id FROM project") == [("chat", "text", None)]
    items = _rows(studio, "SELECT prompt, text, trajectory_id, clip_file FROM item ORDER BY prompt, text")
    assert items == [
        ("2 + 2?", "4", None, None),
        ("2 + 2?", "5", None, None),
        ("Capital of France?", "Lyon.", None, None),
        ("Capital of France?", "Marseille.", None, None),
        ("Capital of France?", "Paris.", None, None),  # shared by two lines: stored once
    ]
    pairs = _rows(
        studio,
        "SELECT a.prompt, b.prompt, q.item_a_id < q.item_b_id, q.method, a.text, b.text FROM query q "
        "JOIN item a ON a.id = q.item_a_id JOIN item b ON b.id = q.item_b_id",
    )
    assert len(pairs) == 3
    assert all(pa == pb and ordered == 1 and method == "import" for pa, pb, ordered, method, _, _ in pairs)
    assert {frozenset(p[4:]) for p in pairs} == {
        frozenset({"Paris.", "Lyon."}),
        frozenset({"Paris.", "Marseille."}),
        frozenset({"4", "5"}),
    }
    assert _counts(studio)["label"] == 0


def test_labeled_layout_stores_pref_of_item_a_under_the_import_annotator(studio: Studio) -> None:
    rows = _labeled(12)
    result = import_text_pairs(studio, "chat", _jsonl(rows), "prefs.jsonl", rng=np.random.default_rng(0))

    assert result.layout is Layout.labeled
    assert (result.pairs_added, result.labels_added, result.labels_present) == (12, 12, 0)
    assert _rows(studio, "SELECT name, role FROM annotator") == [("import", "import")]
    chosen = {r["chosen"] for r in rows}
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, "chat")
        comparisons = repo.comparisons(session, project.id)
        items = repo.items_by_id(session, [i for c in comparisons for i in (c.item_a_id, c.item_b_id)])
    assert len(comparisons) == 12
    for c in comparisons:
        a, b = items[c.item_a_id], items[c.item_b_id]
        assert a.prompt == b.prompt and c.item_a_id < c.item_b_id
        assert c.pref == (1.0 if a.text in chosen else 0.0)
        assert (a.text in chosen) != (b.text in chosen)
    # new responses are stored in a random order, so item A is not always the chosen one
    assert {c.pref for c in comparisons} == {0.0, 1.0}
    stored = _rows(studio, "SELECT choice, pref, swapped, shown_at FROM label")
    assert {(choice, pref) for choice, pref, _, _ in stored} == {("left", 1.0), ("right", 0.0)}
    assert all(swapped == 0 and shown_at is None for _, _, swapped, shown_at in stored)


def test_reimport_adds_nothing_and_a_longer_file_adds_only_the_new_lines(studio: Studio) -> None:
    rows = _labeled(5)
    import_text_pairs(studio, "chat", _jsonl(rows), "prefs.jsonl")
    before = _counts(studio)

    again = import_text_pairs(studio, "chat", _jsonl(rows), "prefs.jsonl")

    assert not again.created
    assert (again.items_added, again.pairs_added, again.pairs_present) == (0, 0, 5)
    assert (again.labels_added, again.labels_present, again.labels_conflicting) == (0, 5, 0)
    assert _counts(studio) == before

    more = import_text_pairs(studio, "chat", _jsonl(rows + _labeled(7)[5:]), "prefs.jsonl")
    assert (more.items_added, more.pairs_added, more.pairs_present, more.labels_added) == (4, 2, 5, 2)
    assert _counts(studio) == {**before, "item": 14, "query": 7, "label": 7}

    # the same pairs without answers: nothing new, the labels stay
    unlabeled = [{"prompt": r["prompt"], "response_a": r["rejected"], "response_b": r["chosen"]} for r in rows]
    pairs = import_text_pairs(studio, "chat", _jsonl(unlabeled), "pairs.jsonl")
    assert (pairs.items_added, pairs.pairs_added, pairs.pairs_present) == (0, 0, 5)
    assert _counts(studio) == {**before, "item": 14, "query": 7, "label": 7}


def test_a_file_is_written_in_batches_that_deduplicate_across_batches_and_keep_the_counters(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text_data, "IMPORT_CHUNK", 3)  # 11 lines: four batches
    # line 7 repeats the pair of line 1 (responses swapped), lines 9-10 reuse responses of batch 1
    rows = _labeled(6) + [
        {"prompt": "question 0?", "chosen": "good answer 0", "rejected": "bad answer 0"},
        {"prompt": "question 6?", "chosen": "good answer 6", "rejected": "bad answer 6"},
        {"prompt": "question 1?", "chosen": "good answer 1", "rejected": "other answer"},
        {"prompt": "question 2?", "chosen": "good answer 2", "rejected": "bad answer 1"},
        {"prompt": "question 1?", "chosen": "bad answer 1", "rejected": "other answer"},
    ]
    with session_scope(studio.engine, write=True) as session:  # someone labels a pair of the project first
        project = repo.create_project(
            session, name="chat", kind=ProjectKind.text, env_id=None, config={}, guidelines=""
        )
        [a, b] = repo.add_text_items(session, project.id, [("question 0?", "good answer 0"), ("question 0?", "x")])
        [query] = repo.add_queries(session, project.id, [(a, b)], "random")
        person = repo.get_or_create_annotator(session, "ann")
        repo.record_label(session, query, person.id, Choice.left, swapped=False, shown_at=None)

    result = import_text_pairs(studio, "chat", _jsonl(rows), "prefs.jsonl")

    assert (result.lines, result.items_added, result.pairs_added, result.pairs_present) == (11, 15, 10, 1)
    assert (result.labels_added, result.labels_present) == (10, 1)
    assert _counts(studio) == {"project": 1, "annotator": 2, "item": 17, "query": 11, "label": 11}
    [(pairs, answers, answered)] = _rows(studio, "SELECT pair_count, answer_count, answered_pairs FROM project")
    assert (pairs, answers, answered) == (11, 11, 11)
    assert sorted(_rows(studio, "SELECT answered FROM query")) == [(1,)] * 11
    assert sorted(_rows(studio, "SELECT answers FROM annotator_count")) == [(1,), (10,)]
    again = import_text_pairs(studio, "chat", _jsonl(rows), "prefs.jsonl")
    assert (again.items_added, again.pairs_added, again.labels_added, again.labels_present) == (0, 0, 0, 11)


def test_a_file_of_very_many_bad_lines_keeps_the_first_problems_and_counts_all(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text_data, "MAX_PROBLEMS_KEPT", 30)
    data = _jsonl([{"prompt": f"q{i}", "chosen": "", "rejected": "b"} for i in range(100)])
    with pytest.raises(ImportFileError) as caught:
        import_text_pairs(studio, "chat", data, "prefs.jsonl")
    assert (len(caught.value.problems), caught.value.total) == (30, 100)
    assert str(caught.value).startswith("prefs.jsonl: 100 problems, nothing imported")
    assert "... and 80 more" in str(caught.value)
    assert _counts(studio) == dict.fromkeys(TABLES, 0)


def test_a_stored_import_label_is_kept_when_a_later_file_answers_the_other_way(studio: Studio) -> None:
    rows = _labeled(3)
    import_text_pairs(studio, "chat", _jsonl(rows), "prefs.jsonl")
    prefs = _rows(studio, "SELECT id, pref FROM label ORDER BY id")
    flipped = [{**r, "chosen": r["rejected"], "rejected": r["chosen"]} for r in rows[:1]] + rows[1:]

    result = import_text_pairs(studio, "chat", _jsonl(flipped), "prefs.jsonl")

    assert (result.labels_added, result.labels_present, result.labels_conflicting) == (0, 2, 1)
    assert _rows(studio, "SELECT id, pref FROM label ORDER BY id") == prefs
    assert "1 kept as stored" in text_data.describe_import(result)


def test_every_bad_line_is_reported_by_number_and_field_and_nothing_is_imported(studio: Studio) -> None:
    import_text_pairs(studio, "chat", _jsonl(_labeled(2)), "good.jsonl")
    before = _counts(studio)
    lines = [
        json.dumps({"prompt": "ok?", "chosen": "yes", "rejected": "no"}),
        json.dumps({"prompt": "q?", "rejected": "no"}),
        "",
        json.dumps({"prompt": "q?", "chosen": 3, "rejected": None}),
        json.dumps({"prompt": "  ", "chosen": "a", "rejected": "b"}),
        '{"prompt": "q?", "chosen": "a",',
        json.dumps(["prompt", "chosen", "rejected"]),
        json.dumps({"prompt": "q?", "chosen": "same", "rejected": "same"}),
        json.dumps({"prompt": "ok?", "chosen": "no", "rejected": "yes"}),
    ]
    data = "\n".join(lines).encode()

    problems = _problems(studio, data, "pairs.jsonl")

    assert problems == [
        "line 2 of pairs.jsonl: field 'chosen' is missing",
        "line 4 of pairs.jsonl: field 'chosen' must be a string, got a number",
        "line 4 of pairs.jsonl: field 'rejected' must be a string, got null",
        "line 5 of pairs.jsonl: field 'prompt' is empty",
        "line 6 of pairs.jsonl: invalid JSON (Expecting property name enclosed in double quotes at column 32)",
        "line 7 of pairs.jsonl: must be a JSON object with fields prompt, response_a, response_b (pairs to label) "
        "or prompt, chosen, rejected (labeled pairs), got an array",
        "line 8 of pairs.jsonl: fields 'chosen' and 'rejected' are identical; a pair needs two different responses",
        "line 9 of pairs.jsonl: contradicts line 1 (same prompt and responses, chosen and rejected swapped); "
        "keep one of the two lines",
    ]
    assert _counts(studio) == before
    # nor is a project created for a bad file
    _problems(studio, data, "pairs.jsonl", project="new-project")
    assert _rows(studio, "SELECT name FROM project") == [("chat",)]


def test_csv_lines_are_numbered_as_in_the_file_and_quoted_cells_may_span_lines(studio: Studio) -> None:
    good = 'prompt,response_a,response_b\r\n"Write\ntwo lines","a, b",c\r\nq?,x,y\r\n'
    result = import_text_pairs(studio, "chat", good.encode(), "pairs.csv")
    assert (result.layout, result.lines, result.pairs_added) == (Layout.pairs, 2, 2)
    assert ("Write\ntwo lines", "a, b") in _rows(studio, "SELECT prompt, text FROM item")

    bad = 'prompt,response_a,response_b\n"multi\nline",a,b\nq?,,c\nq?,a\nq?,a,b,c\n'
    assert _problems(studio, bad.encode(), "pairs.csv") == [
        "line 4 of pairs.csv: field 'response_a' is empty",
        "line 5 of pairs.csv: field 'response_b' is missing",
        'line 6 of pairs.csv: 4 cells but the header has 3; quote cells that contain commas ("a, b")',
    ]
    assert _problems(studio, b"prompt,chosen\nq,a\nq,b\n", "prefs.csv") == [
        "line 1 of prefs.csv: the header lacks the column(s) 'rejected' (found: 'prompt', 'chosen')"
    ]
    assert _problems(studio, b"prompt,response_a,response_b,response_a\nq,a,b,z\n", "twice.csv") == [
        "line 1 of twice.csv: the header names the column(s) 'response_a' more than once; keep one each"
    ]  # one of the two cells would have been lost without a word
    assert _problems(studio, b"prompt,response_a,response_b\rq,a,b\rr,c,d\r", "mac.csv") == [
        "line 1 of mac.csv: malformed CSV header (a carriage return (CR) outside quotes: save a file whose lines "
        "end in a lone CR with LF or CRLF line ends, and quote a cell that holds one)"
    ]
    assert _problems(studio, b"\nprompt,chosen\nq,a\n", "late.csv") == [
        "line 2 of late.csv: the header lacks the column(s) 'rejected' (found: 'prompt', 'chosen')"
    ]
    assert _counts(studio)["query"] == 2
    blank_first = import_text_pairs(studio, "blank", b"\n\nprompt,response_a,response_b\nq,a,b\n", "blank.csv")
    assert blank_first.lines == blank_first.pairs_added == 1  # blank lines before the header are skipped, as after it


@pytest.mark.parametrize(
    ("data", "filename", "problem"),
    [
        (b"a,b\n1,2\n", "pairs.csv", "line 1 of pairs.csv: expected the fields prompt, response_a, response_b"),
        (b"", "pairs.jsonl", "pairs.jsonl holds no pairs"),
        (b'[{"prompt": "q"}]', "pairs.json", "pairs.json holds a JSON array; write one JSON object per line"),
        (b'{"prompt": "q", "chosen": "\xff"}', "p.jsonl", "line 1 of p.jsonl: not UTF-8 text (byte 27)"),
        (b"{}", "pairs.txt", "pairs.txt: unknown file type; name it with one of .csv, .json, .jsonl, .ndjson"),
        (
            b'{"prompt": "q", "chosen": "a", "response_a": "b"}',
            "mixed.jsonl",
            "line 1 of mixed.jsonl: has both chosen/rejected and response_a/response_b fields",
        ),
    ],
    ids=["unknown-fields", "empty", "json-array", "not-utf8", "extension", "mixed-layouts"],
)
def test_files_that_cannot_be_read_say_why(studio: Studio, data: bytes, filename: str, problem: str) -> None:
    [found] = _problems(studio, data, filename)
    assert found.startswith(problem)
    assert _counts(studio) == dict.fromkeys(TABLES, 0)


def test_many_problems_are_all_kept_and_the_message_lists_the_first_twenty(studio: Studio) -> None:
    data = _jsonl([{"prompt": f"q{i}", "chosen": "", "rejected": "b"} for i in range(25)])
    with pytest.raises(ImportFileError) as caught:
        import_text_pairs(studio, "chat", data, "prefs.jsonl")
    assert len(caught.value.problems) == 25
    message = str(caught.value)
    assert message.startswith("prefs.jsonl: 25 problems, nothing imported")
    assert "line 20 of prefs.jsonl: field 'chosen' is empty" in message
    assert "line 21 of" not in message and "... and 5 more" in message


def test_importing_into_a_trajectory_project_is_refused(studio: Studio) -> None:
    with session_scope(studio.engine, write=True) as session:
        session.add(Project(name="demo", kind=ProjectKind.trajectory, env_id="CartPole-v1", config={}))
    before = _counts(studio)
    with pytest.raises(ValueError, match="'demo' is a trajectory project .* choose another name"):
        import_text_pairs(studio, "demo", _jsonl(_labeled(2)), "prefs.jsonl")
    assert _counts(studio) == before
    with pytest.raises(ValueError, match="works on text projects only"):
        export_preferences(studio, "demo", studio.settings.data_dir / "out.jsonl")


# --- export ----------------------------------------------------------------------------------


def _read(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_round_trips_an_imported_labeled_file(studio: Studio, tmp_path: Path, fmt: str) -> None:
    rows = _labeled(6) + [{"prompt": 'Quote, "comma"\nand newline', "chosen": "é ✓", "rejected": "<b>x</b>"}]
    import_text_pairs(studio, "chat", _jsonl(rows), "prefs.jsonl")
    out = tmp_path / f"out.{fmt}"

    result = export_preferences(studio, "chat", out)

    assert (result.rows, result.ties) == (7, 0)
    assert result.path == out and result.ties_path == tmp_path / f"out.ties.{fmt}"
    # the annotator travels with each row
    assert _read(out) == [{**r, "annotator": "import", "adjudication": "none"} for r in rows]
    assert _read(result.ties_path) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [f"out.{fmt}", f"out.ties.{fmt}"]

    # the exported file imports again into an equal project
    again = import_text_pairs(studio, "copy", out.read_bytes(), out.name)
    assert (again.layout, again.labels_added) == (Layout.labeled, 7)
    assert _read(export_preferences(studio, "copy", tmp_path / f"copy.{fmt}").path) == _read(out)


def test_export_writes_one_row_per_strict_label_and_ties_to_the_sibling_file(studio: Studio, tmp_path: Path) -> None:
    pairs = [{"prompt": f"p{i}", "response_a": f"a{i}", "response_b": f"b{i}"} for i in range(4)]
    import_text_pairs(studio, "chat", _jsonl(pairs), "pairs.jsonl")
    with session_scope(studio.engine, write=True) as session:
        project = repo.get_project(session, "chat")
        alice = repo.get_or_create_annotator(session, "alice")
        bob = repo.get_or_create_annotator(session, "bob")
        queries = sorted(repo.query_ids_by_pair(session, project.id).items())
        texts = {i.id: i for i in repo.items_by_id(session, [x for pair, _ in queries for x in pair]).values()}
        answers = [  # (query index, annotator, choice, swapped)
            (0, alice, Choice.left, False),  # item A preferred
            (0, bob, Choice.left, True),  # item B was on the left: item B preferred
            (1, alice, Choice.right, False),
            (2, alice, Choice.equal, True),
            (2, bob, Choice.cant_tell, False),
            (3, alice, Choice.skip, False),
        ]
        for index, annotator, choice, swapped in answers:
            repo.record_label(session, queries[index][1], annotator.id, choice, swapped=swapped)

    def text(index: int, side: int) -> str:
        return str(texts[queries[index][0][side]].text)

    def prompt(index: int) -> str:
        return str(texts[queries[index][0][0]].prompt)

    out = tmp_path / "prefs.jsonl"
    result = export_preferences(studio, "chat", out, "jsonl")

    assert (result.rows, result.ties) == (3, 2)

    def row(index: int, first: int, who: str, adjudication: str = "none") -> dict[str, str]:
        chosen, rejected = text(index, first), text(index, 1 - first)
        return {"prompt": prompt(index), "chosen": chosen, "rejected": rejected, "annotator": who,
                "adjudication": adjudication}  # fmt: skip

    assert _read(out) == [row(0, 0, "alice"), row(0, 1, "bob"), row(1, 1, "alice")]
    ties = [
        {"prompt": prompt(2), "response_a": text(2, 0), "response_b": text(2, 1), "choice": c, "annotator": who,
         "adjudication": "none"}
        for c, who in (("equal", "alice"), ("cant_tell", "bob"))
    ]  # fmt: skip
    assert _read(tmp_path / "prefs.ties.jsonl") == ties

    # an admin rules on the disputed pair: its labels are marked superseded, the ruling follows them
    # (what the studio's pooled training uses: the rows that are not superseded)
    with session_scope(studio.engine, write=True) as session:
        repo.get_or_create_annotator(session, "root")
    adjudicate(studio, "chat", queries[0][1], "b", by="root")
    export_preferences(studio, "chat", out, "jsonl")
    ruled = [row(0, 0, "alice", "superseded"), row(0, 1, "bob", "superseded")]
    assert _read(out) == [*ruled, row(1, 1, "alice"), row(0, 1, "root", "ruling")]
    assert _read(tmp_path / "prefs.ties.jsonl") == ties

    # exporting again replaces both files; --format wins over the extension
    csv_out = export_preferences(studio, "chat", tmp_path / "prefs.txt", "csv")
    assert csv_out.ties_path == tmp_path / "prefs.ties.csv"
    assert _read(tmp_path / "prefs.ties.csv")[0]["choice"] == "equal"
    assert (tmp_path / "prefs.txt").read_text().splitlines()[0] == "prompt,chosen,rejected,annotator,adjudication"


# --- command line and shipped data -----------------------------------------------------------


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_import_export_and_errors(tmp_path: Path) -> None:
    data = tmp_path / "data"
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_bytes(_jsonl(_labeled(3)))

    first = _cli("--data-dir", str(data), "import", "--project", "chat", str(prefs))
    assert first.exit_code == 0, first.output
    assert "prefs.jsonl -> text project 'chat' (created): 3 pairs read, 6 new responses, 3 new pairs" in first.output
    assert "3 labels added (annotator 'import')" in first.output
    again = _cli("--data-dir", str(data), "import", "--project", "chat", str(prefs))
    assert "0 new pairs, 3 already present, 0 labels added" in again.output

    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,chosen,rejected\nq,a,b\nq2,,b\n")
    failed = CliRunner().invoke(cli, ["--data-dir", str(data), "import", "--project", "chat", str(bad)])
    assert failed.exit_code == 1
    assert "line 3 of bad.csv: field 'chosen' is empty" in failed.output and "nothing imported" in failed.output

    out = tmp_path / "export" / "prefs.csv"
    exported = _cli("--data-dir", str(data), "export", "--project", "chat", "-o", str(out))
    assert exported.exit_code == 0, exported.output
    assert f"wrote 3 preferences to {out} and 0 ties to {out.with_name('prefs.ties.csv')}" in exported.output
    assert _read(out) == [{**r, "annotator": "import", "adjudication": "none"} for r in _labeled(3)]

    unknown = CliRunner().invoke(cli, ["--data-dir", str(data), "export", "--project", "nope", "-o", str(out)])
    assert unknown.exit_code == 1 and "no project named 'nope'" in unknown.output


def test_cli_demo_text_imports_the_shipped_files_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _cli("--data-dir", str(data), "demo-text")
    assert first.exit_code == 0, first.output
    assert "demo_text_pairs.jsonl -> text project 'text-demo' (created)" in first.output
    status = json.loads(_cli("--data-dir", str(data), "status", "--json").output)
    [project] = status["projects"]
    assert project["kind"] == "text" and project["queries"] >= 38 and project["labels"] >= 5

    second = _cli("--data-dir", str(data), "demo-text")
    assert "0 new pairs" in second.output and "(created)" not in second.output
    assert json.loads(_cli("--data-dir", str(data), "status", "--json").output) == status


def test_shipped_demo_files_parse_and_are_package_data() -> None:
    pairs_file, labeled_file = text_data.DEMO_FILES
    pairs = text_data.parse_text_file(pairs_file.read_bytes(), pairs_file.name)
    labeled = text_data.parse_text_file(labeled_file.read_bytes(), labeled_file.name)
    assert pairs.layout is Layout.pairs and 30 <= len(pairs.rows) <= 60
    assert labeled.layout is Layout.labeled and len(labeled.rows) >= 5
    responses = [t for row in pairs.rows for t in (row.first, row.second)]
    assert any("<script>alert(1)</script>" in t for t in responses)
    assert any("**" in t or "```" in t for t in responses)  # markdown too
    assert len({row.prompt for row in pairs.rows}) == len(pairs.rows)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "data/*.jsonl" in config["tool"]["setuptools"]["package-data"]["app"]
    assert pairs_file.parent == ROOT / "app" / "data"
