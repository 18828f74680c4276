"""Preference data as Parquet / Hugging Face datasets: export of text and clip projects, import
of Parquet files and dataset folders in TRL's formats, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import _cartpole as cp
import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from app.cli import cli
from app.config import Settings, Studio
from app.services.agreement import adjudicate
from app.services.clip_data import project_data
from app.services.pref_datasets import trl_row
from db import repo
from db.engine import session_scope


def _rlhf(data: Path, *args: str):
    return CliRunner(env=cp.env(data)).invoke(cli, ["--data-dir", str(data), *args])


@pytest.fixture
def data(tmp_path: Path, database_url: str) -> Path:
    """An empty data folder whose store is its SQLite file or a PostgreSQL database (both run)."""
    folder = tmp_path / "data"
    folder.mkdir()
    if not database_url.startswith("sqlite"):
        (folder / cp.STORE_URL_FILE).write_text(database_url)
    return folder


def _load(path: Path) -> datasets.Dataset:
    return datasets.load_dataset("parquet", data_files=str(path), split="train")


def _labels(data: Path, project: str) -> list[tuple]:
    studio = cp.studio_for(data)
    with session_scope(studio.engine) as session:
        p = repo.find_project(session, project)
        return (
            [] if p is None else [(j.prompt, j.text_a, j.text_b, j.pref) for j in repo.text_judgements(session, p.id)]
        )


def test_a_text_project_round_trips_through_parquet_and_datasets_loads_it(tmp_path: Path, data: Path) -> None:
    rows = [
        {"prompt": f"Question {i}?", "chosen": f"A careful answer {i}.", "rejected": f"No idea {i}."} for i in range(12)
    ]
    src = tmp_path / "labeled.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _rlhf(data, "import", "--project", "t", str(src)).exit_code == 0

    result = _rlhf(data, "export", "--project", "t", "-o", str(tmp_path / "prefs.parquet"))

    assert result.exit_code == 0, result.output
    assert "wrote 12 preferences" in result.output and "0 ties" in result.output
    loaded = _load(tmp_path / "prefs.parquet")
    columns = ["prompt", "chosen", "rejected", "annotator", "adjudication", "shown_at", "answered_at"]
    assert loaded.column_names == columns
    assert sorted((r["prompt"], r["chosen"], r["rejected"]) for r in loaded) == sorted(
        (r["prompt"], r["chosen"], r["rejected"]) for r in rows
    )
    assert set(loaded["annotator"]) == {"import"} and all(t is not None for t in loaded["answered_at"])
    # no ties: an empty Parquet file (which pyarrow reads; datasets refuses to load a dataset of no rows)
    assert pq.read_table(tmp_path / "prefs.ties.parquet").num_rows == 0

    again = _rlhf(data, "import", "--project", "copy", str(tmp_path / "prefs.parquet"))
    assert again.exit_code == 0, again.output
    assert "12 labels added" in again.output
    assert sorted(_labels(data, "copy")) == sorted(_labels(data, "t"))

    loaded.save_to_disk(str(tmp_path / "saved"))  # a datasets folder imports too
    from_folder = _rlhf(data, "import", "--project", "copy2", str(tmp_path / "saved"))
    assert from_folder.exit_code == 0, from_folder.output
    assert sorted(_labels(data, "copy2")) == sorted(_labels(data, "t"))


def test_trl_conversational_and_implicit_prompt_rows_become_prompt_chosen_rejected() -> None:
    user = {"role": "user", "content": "What colour is the sky?"}
    conversational = {
        "prompt": [user],
        "chosen": [{"role": "assistant", "content": "Blue."}],
        "rejected": [{"role": "assistant", "content": "Green."}],
    }
    assert trl_row(conversational) == {"prompt": "What colour is the sky?", "chosen": "Blue.", "rejected": "Green."}
    implicit = {
        "chosen": [user, {"role": "assistant", "content": "Blue."}],
        "rejected": [user, {"role": "assistant", "content": "Green."}],
    }
    assert trl_row(implicit) == trl_row(conversational)
    two_turns = {"prompt": [user, {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Why?"}]}
    two_turns |= {"chosen": "Rayleigh scattering.", "rejected": "Because."}
    assert trl_row(two_turns)["prompt"] == "user: What colour is the sky?\nassistant: Blue.\nuser: Why?"
    # ultrafeedback_binarized's layout: a prompt column and whole conversations that repeat it
    repeated = {"prompt": "What colour is the sky?", **implicit}
    assert trl_row(repeated) == trl_row(conversational)


def test_a_parquet_file_with_one_bad_row_imports_nothing(tmp_path: Path, data: Path) -> None:
    good = {"prompt": "Q?", "chosen": "Yes.", "rejected": "No."}
    table = pa.Table.from_pylist(
        [good, {"prompt": "Q2?", "chosen": "Same.", "rejected": "Same."}, good | {"prompt": "Q3?"}]
    )
    pq.write_table(table, tmp_path / "bad.parquet")
    user = {"role": "user", "content": "Hi?"}
    conversational = pa.Table.from_pylist(
        [
            {
                "chosen": [user, {"role": "assistant", "content": f"Hello {i}!"}],
                "rejected": [user, {"role": "assistant", "content": "Go away."}],
            }
            for i in range(3)
        ]
    )
    pq.write_table(conversational, tmp_path / "conv.parquet")

    bad = _rlhf(data, "import", "--project", "t", str(tmp_path / "bad.parquet"))

    assert bad.exit_code != 0
    assert "bad.parquet" in bad.output and "line 2" in bad.output and "nothing imported" in bad.output
    assert _labels(data, "t") == []
    ok = _rlhf(data, "import", "--project", "t", str(tmp_path / "conv.parquet"))
    assert ok.exit_code == 0, ok.output
    assert sorted(_labels(data, "t"))[0][0] == "Hi?" and len(_labels(data, "t")) == 3
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("prompt,chosen,rejected\n")
    refused = _rlhf(data, "import", "--project", "t", str(not_parquet))
    assert refused.exit_code != 0 and "is not a readable Parquet file" in refused.output


def test_a_dataset_folder_with_a_malformed_json_lines_file_is_refused_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "part-0.jsonl").write_text('{"prompt": "Q?", "chosen": "Yes.", "rejected": "No."}\n{"prompt": oops}\n')
    out = _rlhf(tmp_path / "data", "import", "--project", "t", str(folder))
    assert out.exit_code == 1, out.output
    assert "could not be read as a dataset" in out.output and "rlhf import FILE.jsonl" in out.output
    assert "internal error" not in out.output


def test_a_clip_project_exports_both_segments_of_every_answer_as_parquet(tmp_path: Path) -> None:
    data = cp.build(tmp_path / "data", n_segments=20, n_queries=30, oracle_labels=15)
    out = tmp_path / "clips.parquet"

    refused = _rlhf(data, "export", "--project", cp.PROJECT, "-o", str(tmp_path / "clips.jsonl"))
    assert refused.exit_code != 0 and "export as Parquet: -o clips.parquet" in refused.output
    result = _rlhf(data, "export", "--project", cp.PROJECT, "-o", str(out))

    assert result.exit_code == 0, result.output
    loaded = _load(out)
    assert len(loaded) == 15 and set(loaded["env_id"]) == {cp.ENV_ID} and set(loaded["annotator"]) == {"teacher:oracle"}
    studio = Studio(Settings.from_env(data))
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, cp.PROJECT)
        comparisons = {c.label_id: c.pref for c in repo.comparisons(session, project.id)}
    segments = project_data(studio, project)
    for row in loaded:
        assert row["pref"] == comparisons[row["label_id"]]
        for side in ("a", "b"):
            r = segments.rows([row[f"segment_{side}"]])[0]
            obs = np.array(row[f"observations_{side}"], dtype=np.float32)
            assert obs.shape == (row[f"length_{side}"] + 1, 4)
            np.testing.assert_allclose(obs, segments.segments.obs[r].reshape(len(obs), -1), rtol=1e-6)
            np.testing.assert_array_equal(np.array(row[f"valid_{side}"]), segments.segments.valid[r])
            assert (data / row[f"episode_{side}"]).exists() and (data / row[f"clip_{side}"]).exists()
    assert {row["choice"] for row in loaded} <= {"left", "right", "equal"}
    assert set(loaded["adjudication"]) == {"none"}
    with pytest.raises(KeyError):
        loaded[0]["prompt"]

    # an admin's ruling: a row of its own after the labels, which are marked superseded
    ruled = loaded[0]["query_id"]
    adjudicate(studio, cp.PROJECT, ruled, "equal")
    assert _rlhf(data, "export", "--project", cp.PROJECT, "-o", str(out)).exit_code == 0
    again = _load(out)
    assert len(again) == 16 and [r["adjudication"] for r in again if r["query_id"] == ruled] == ["superseded", "ruling"]
    last = again[-1]
    assert (last["adjudication"], last["pref"], last["label_id"], last["choice"], last["annotator"]) == (
        "ruling", 0.5, None, None, None
    )  # fmt: skip
    assert last["observations_a"] == loaded[0]["observations_a"]  # the pair's segments, as in its labels' rows
