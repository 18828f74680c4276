"""The `rlhf` command line on fresh data folders."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app.cli import cli


def _run(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result


def _status(data_dir) -> dict:
    result = _run("--data-dir", str(data_dir), "status", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_demo_then_status_then_demo_again_adds_nothing(tmp_path):
    data = tmp_path / "d"
    first = _run("--data-dir", str(data), "demo", "--segments", "8", "--queries", "12", "--workers", "1")
    assert first.exit_code == 0, first.output
    assert "project 'demo' created: 8 segments, 12 queries, 0 labels" in first.output
    before = _status(data)
    [project] = before["projects"]
    assert project["name"] == "demo" and project["kind"] == "trajectory"
    assert project["env_id"] == "MiniGrid-Empty-Random-6x6-v0"
    assert (project["items"], project["queries"], project["labels"]) == (8, 12, 0)
    files_before = sorted(p.relative_to(data) for p in data.rglob("*.npz"))
    clips_before = sorted(p.relative_to(data) for p in data.rglob("*.gif"))
    assert len(clips_before) == 24  # each pair in both side orders

    again = _run("--data-dir", str(data), "demo", "--segments", "8", "--queries", "12", "--workers", "1")
    assert again.exit_code == 0 and "already exists, nothing added" in again.output
    assert _status(data) == before
    assert sorted(p.relative_to(data) for p in data.rglob("*.npz")) == files_before


@pytest.mark.slow  # renders CartPole clips
def test_cartpole_project_and_plain_status_table(tmp_path):
    data = tmp_path / "d"
    out = _run(
        "--data-dir",
        str(data),
        "demo",
        "--project",
        "cp",
        "--env",
        "CartPole-v1",
        "--segments",
        "6",
        "--queries",
        "5",
        "--workers",
        "1",
    )
    assert out.exit_code == 0, out.output
    table = _run("--data-dir", str(data), "status").output.splitlines()
    assert table[0].split() == ["project", "kind", "env", "items", "queries", "labels"]
    assert table[1].split() == ["cp", "trajectory", "CartPole-v1", "6", "5", "0"]


def test_data_dir_comes_from_the_environment_unless_given(tmp_path):
    env_dir, flag_dir = tmp_path / "env", tmp_path / "flag"
    _run("demo", "--segments", "4", "--queries", "3", "--workers", "1", env={"RLHF_DATA_DIR": str(env_dir)})
    assert (env_dir / "rlhf.db").exists()
    assert _status(env_dir)["projects"][0]["items"] == 4
    status = _run("--data-dir", str(flag_dir), "status", "--json", env={"RLHF_DATA_DIR": str(env_dir)})
    assert json.loads(status.output) == {"data_dir": str(flag_dir.resolve()), "projects": []}


def test_bad_environment_gives_a_clear_error_and_creates_nothing(tmp_path):
    data = tmp_path / "d"
    result = CliRunner().invoke(cli, ["--data-dir", str(data), "demo", "--env", "NoSuchEnv-v1"])
    assert result.exit_code == 1
    assert "unknown environment 'NoSuchEnv-v1'" in result.output and "CartPole-v1" in result.output
    assert _status(data)["projects"] == []
    assert not (data / "projects").exists()


def test_impossible_counts_are_refused(tmp_path):
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "demo", "--segments", "4", "--queries", "7"])
    assert result.exit_code == 1 and "4 segments make 1 to 6 pairs" in result.output


def test_status_on_an_empty_folder_says_how_to_start(tmp_path):
    out = _run("--data-dir", str(tmp_path / "empty"), "status").output
    assert "no projects" in out and "rlhf demo" in out


@pytest.mark.slow
def test_default_demo_has_at_least_200_segments_and_300_queries(tmp_path):
    result = _run("--data-dir", str(tmp_path), "demo")
    assert result.exit_code == 0, result.output
    [project] = _status(tmp_path)["projects"]
    assert project["items"] >= 200 and project["queries"] >= 300
