"""Preference data as Parquet (what Hugging Face ``datasets`` loads), out and in.

Export (``rlhf export -o prefs.parquet``):

- a text project: TRL's preference rows ``prompt, chosen, rejected`` (one per left/right
  answer) with ``annotator, adjudication, shown_at, answered_at``; equal and can't-tell answers
  go to the sibling ``prefs.ties.parquet`` (``prompt, response_a, response_b, choice, annotator, ...``);
- a trajectory project: one row per answer with both segments: ``segment_a``/``segment_b``
  (item ids), their ``episode_*`` file (relative to the data folder), ``start_*`` and
  ``length_*``, ``clip_*`` (the clip file), ``observations_*`` (L + 1 rows; vector
  observations only, pixel observations are referenced by file) and ``actions_*`` (L),
  ``valid_*``, then ``choice``, ``pref`` (P(segment A preferred); None for can't tell),
  ``annotator``, ``adjudication``, ``shown_at``, ``answered_at``, and the project's ``env_id``.

``adjudication`` (both kinds): ``none`` for an answer, ``superseded`` for an answer on a pair
an admin ruled on, ``ruling`` for the admin's answer (one row per ruled pair, after all the labels;
in a clip export its ``label_id`` and ``choice`` are empty; its ``annotator`` is the admin, empty
where no account is recorded). A pooled model trains on the rows
that are not ``superseded``, as the studio's own training does.

``datasets.load_dataset("parquet", data_files="prefs.parquet")`` loads either.

Import (``rlhf import --project P prefs.parquet`` or a dataset folder): a Parquet file, a
folder written by ``Dataset.save_to_disk``, or a local dataset folder (Parquet / JSON Lines
files, as a Hub dataset is laid out) in TRL's preference formats: ``prompt, chosen,
rejected`` as strings, conversational (lists of ``{"role", "content"}`` messages), or with
an implicit prompt (``chosen`` and ``rejected`` whole conversations that share their first
turns); or pairs to label (``prompt, response_a, response_b``). Rows become JSON Lines and
go through the same all-or-nothing checks and transaction as a JSONL import: one bad row
imports nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.config import Studio
from app.services.text_data import (
    ExportResult,
    ImportFileError,
    ImportResult,
    _export_target,
    _import,
    _Source,
    _store_files,
    parquet_bytes,
)
from db import repo
from db.engine import session_scope
from db.models import ProjectKind, as_utc
from rlhf_core.errors import InvalidInputError
from rlhf_core.fileio import write_bytes_atomic

#: Episodes a clip export keeps loaded at once (the oldest is dropped first).
EPISODES_KEPT = 16
#: Files a dataset folder may hold its rows in, by extension.
DATA_FILES = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}


# --- export ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrajectoryExport:
    path: Path
    rows: int


def export_trajectory_parquet(studio: Studio, project_name: str, path: Path) -> TrajectoryExport:
    """A trajectory project's answers, one row per answer with both segments, as Parquet."""
    import pyarrow as pa

    from rlhf_core.envs.episodes import load_episode, padded_actions, segment_indices

    target = _export_target(path, _store_files(studio))
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        judgements = repo.judgements(session, project.id)
        rulings = repo.rulings(session, project.id)
        items = {item.id: (item, traj) for item, traj in repo.project_items(session, project.id)}
        env_id = project.env_id or ""
    pixels = bool(project.config.get("pixels"))
    episodes: dict[str, Any] = {}

    def segment(item_id: int) -> dict[str, Any]:
        item, traj = items[item_id]
        assert item.start is not None and item.length is not None
        out: dict[str, Any] = {"episode": traj.file, "start": item.start, "length": item.length, "clip": item.clip_file}
        if traj.file not in episodes:
            if len(episodes) >= EPISODES_KEPT:  # a few episodes in memory, not a whole project's
                episodes.pop(next(iter(episodes)))
            episodes[traj.file] = load_episode(studio.path(traj.file))
        ep = episodes[traj.file]
        idx, valid = segment_indices(ep.length, item.start, item.length + 1)
        steps = np.minimum(idx[: item.length], ep.length - 1)
        acts = padded_actions(ep.actions, steps, valid[: item.length])
        out["observations"] = None if pixels else ep.obs[idx].reshape(len(idx), -1).astype(np.float32).tolist()
        out["actions"] = np.asarray(acts, dtype=np.float32).reshape(item.length, -1).tolist()
        out["valid"] = valid[: item.length].astype(bool).tolist()
        return out

    ruled = {r.query_id for r in rulings}
    entries = [
        (j.label_id, j.query_id, j.item_a_id, j.item_b_id, j.choice.value, j.pref, j.annotator, j.shown_at,
         j.answered_at, "superseded" if j.query_id in ruled else "none")
        for j in judgements
    ]  # fmt: skip
    entries += [  # an admin's answer (no label, nothing clicked on a screen), after the labels it settles
        (None, r.query_id, r.item_a_id, r.item_b_id, None, r.pref, r.by, None, r.at, "ruling")
        for r in rulings
    ]
    rows = []
    for label_id, query_id, item_a, item_b, choice, pref, annotator, shown, answered, adjudication in entries:
        row: dict[str, Any] = {"label_id": label_id, "query_id": query_id}
        for side, item_id in (("a", item_a), ("b", item_b)):
            row[f"segment_{side}"] = item_id
            row.update({f"{k}_{side}": v for k, v in segment(item_id).items()})
        row.update(
            choice=choice,
            pref=pref,
            annotator=annotator,
            adjudication=adjudication,
            shown_at=as_utc(shown),
            answered_at=as_utc(answered),
            env_id=env_id,
        )
        rows.append(row)
    side_fields = []
    for side in ("a", "b"):
        side_fields += [
            (f"segment_{side}", pa.int64()),
            (f"episode_{side}", pa.string()),
            (f"start_{side}", pa.int32()),
            (f"length_{side}", pa.int32()),
            (f"clip_{side}", pa.string()),
            (f"observations_{side}", pa.list_(pa.list_(pa.float32()))),
            (f"actions_{side}", pa.list_(pa.list_(pa.float32()))),
            (f"valid_{side}", pa.list_(pa.bool_())),
        ]
    schema = pa.schema(
        [
            ("label_id", pa.int64()),
            ("query_id", pa.int64()),
            *side_fields,
            ("choice", pa.string()),
            ("pref", pa.float64()),
            ("annotator", pa.string()),
            ("adjudication", pa.string()),
            ("shown_at", pa.timestamp("us", tz="UTC")),
            ("answered_at", pa.timestamp("us", tz="UTC")),
            ("env_id", pa.string()),
        ]
    )
    try:
        write_bytes_atomic(target, parquet_bytes(rows, schema))
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return TrajectoryExport(path, len(rows))


def project_kind(studio: Studio, project_name: str) -> ProjectKind:
    with session_scope(studio.engine) as session:
        return repo.get_project(session, project_name).kind


# --- import ----------------------------------------------------------------------------------


def is_dataset_source(path: Path) -> bool:
    """Whether ``path`` is read by :func:`import_dataset` (a Parquet file or a folder)."""
    return path.is_dir() or path.suffix.lower() == ".parquet"


def import_dataset(
    studio: Studio, project_name: str, path: Path, *, rng: np.random.Generator | None = None
) -> ImportResult:
    """Import a Parquet file or a local dataset folder of TRL preference rows (or pairs to label)
    into a text project; all or nothing, as a JSON Lines import."""
    name = path.name or str(path)
    with tempfile.TemporaryDirectory(prefix="rlhf-import-") as tmp:
        lines = Path(tmp) / "rows.jsonl"
        with lines.open("w", encoding="utf-8") as out:
            for record in _dataset_rows(path):
                out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        return _import(studio, project_name, _Source(name, path=lines, fmt="jsonl"), rng)


def _dataset_rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.is_dir():
        yield from _folder_rows(path)
        return
    try:
        import pyarrow.parquet as pq

        reader = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) on a non-Parquet file
        raise ImportFileError(path.name, [f"{path.name} is not a readable Parquet file: {exc}"]) from exc
    for batch in reader.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            yield trl_row(row)


def _folder_rows(folder: Path) -> Iterator[dict[str, Any]]:
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # a local folder: never ask the Hub
    import datasets

    saved = (folder / "dataset_info.json").exists() or (folder / "dataset_dict.json").exists()
    try:
        if saved:
            loaded = datasets.load_from_disk(str(folder))
        else:
            files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix.lower() in DATA_FILES]
            builders = {DATA_FILES[p.suffix.lower()] for p in files}
            if not files or len(builders) > 1:
                raise ImportFileError(
                    folder.name,
                    [
                        f"{folder} holds no dataset: give a folder written by Dataset.save_to_disk, or one of Parquet "
                        "or JSON Lines files (one kind), or a .parquet file"
                    ],
                )
            loaded = datasets.load_dataset(builders.pop(), data_files=[str(p) for p in files], split="train")
    except (FileNotFoundError, ValueError) as exc:
        raise ImportFileError(folder.name, [f"{folder} could not be read as a dataset: {exc}"]) from exc
    except datasets.exceptions.DatasetGenerationError as exc:  # a malformed file in the folder
        cause = exc.__cause__ or exc
        raise ImportFileError(
            folder.name,
            [
                f"{folder} could not be read as a dataset ({type(cause).__name__}: {cause}); import a JSON Lines "
                "file on its own (rlhf import FILE.jsonl) to have its bad line named"
            ],
        ) from exc
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded and len(loaded) != 1:
            raise ImportFileError(
                folder.name, [f"{folder} has the splits {', '.join(loaded)}; import reads 'train' or a single split"]
            )
        loaded = loaded["train"] if "train" in loaded else next(iter(loaded.values()))
    for row in loaded:
        yield trl_row(dict(row))


def _messages_text(messages: Any) -> Any:
    """A conversation's text: a lone message's content, else ``role: content`` lines."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "content" in m for m in messages):
        return messages  # not a conversation: the JSONL checks name what is wrong with it
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n".join(f"{m.get('role', 'user')}: {m['content']}" for m in messages)


def trl_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row of any TRL preference format as ``prompt, chosen, rejected`` strings (other
    layouts pass through for the JSONL checks to accept or name)."""
    if "chosen" in row and "rejected" in row:
        chosen, rejected, prompt = row["chosen"], row["rejected"], row.get("prompt")
        if isinstance(chosen, list) and isinstance(rejected, list):
            shared = 0  # implicit prompt: the turns both conversations share (TRL's maybe_extract_prompt)
            while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
                shared += 1
            if prompt is None or shared:  # a prompt column that the conversations repeat is counted once
                prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
        return {
            "prompt": _messages_text(prompt or ""),
            "chosen": _messages_text(chosen),
            "rejected": _messages_text(rejected),
        }
    return {k: _messages_text(v) for k, v in row.items()}


# --- what the CLI and the pages call ------------------------------------------------------------


def export_project(
    studio: Studio, project_name: str, path: Path, fmt: str | None = None
) -> ExportResult | TrajectoryExport:
    """Export a project's answers: a text project as JSONL, CSV or Parquet (TRL rows and ties), a
    trajectory project as Parquet (one row per answer with both segments)."""
    from app.services.text_data import export_preferences, format_for

    if not path.name or path.name in (".", ".."):
        raise InvalidInputError(f"-o needs a file name, got {str(path)!r}; e.g. -o prefs.parquet")
    fmt = format_for(path, fmt)
    if project_kind(studio, project_name) is ProjectKind.text:
        return export_preferences(studio, project_name, path, fmt)
    if fmt != "parquet":
        raise InvalidInputError(
            f"project {project_name!r} holds clips; its preferences (segments, actions, answers) export as Parquet: "
            f"-o {path.with_suffix('.parquet').name} (or --format parquet)"
        )
    return export_trajectory_parquet(studio, project_name, path)


def import_any(
    studio: Studio, project_name: str, path: Path, *, rng: np.random.Generator | None = None
) -> ImportResult:
    """Import a CSV or JSON Lines file, a Parquet file or a dataset folder into a text project."""
    from app.services.text_data import import_text_file

    if is_dataset_source(path):
        return import_dataset(studio, project_name, path, rng=rng)
    return import_text_file(studio, project_name, path, rng=rng)


def import_parquet_bytes(
    studio: Studio, project_name: str, data: bytes, filename: str, *, rng: np.random.Generator | None = None
) -> ImportResult:
    """An uploaded Parquet file (the Projects page): written to a temporary file, then imported."""
    with tempfile.TemporaryDirectory(prefix="rlhf-upload-") as tmp:
        path = Path(tmp) / (Path(filename).name or "upload.parquet")
        path.write_bytes(data)
        return import_dataset(studio, project_name, path, rng=rng)
