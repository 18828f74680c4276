"""How much a project's annotators agree, computed with the field's libraries.

- Krippendorff's alpha, nominal, with missing data (the ``krippendorff`` package): one
  number for the whole team, chance-corrected, over every pair answered by two or more
  people. Categories: A preferred, equal, B preferred; "can't tell" is missing data.
- Cohen's kappa for every two annotators who answered at least :data:`MIN_SHARED` pairs
  in common (``sklearn.metrics.cohen_kappa_score``).
- Per annotator: agreement with the majority of the *other* annotators of each pair
  (leave-one-out, pairs where the others have a unique most common answer), with gold
  pairs, and with the active reward model (strict answers only); tie and can't-tell rates;
  median seconds per label, from when the pair was shown.
- The most disputed pairs (by the entropy of their answers), with their rulings.

An admin's ruling on a pair (:func:`adjudicate`) is what training uses for it.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from app.config import Studio
from db import repo
from db.engine import session_scope
from db.models import Choice, Project, ProjectKind
from rlhf_core.errors import StudioError
from rlhf_core.rewards.kinds import PERSONAL

MIN_SHARED = 5
"""Pairs two annotators must both have answered for their Cohen's kappa to be shown."""
_CODE = {0.0: 0, 0.5: 1, 1.0: 2}
_ANSWER = {"a": 1.0, "b": 0.0, "equal": 0.5}


@dataclass(frozen=True)
class AnnotatorAgreement:
    """One annotator's labels and how they agree with others, gold pairs and the model."""

    annotator: str
    labels: int
    with_majority: float | None
    majority_pairs: int
    with_gold: float | None
    gold_pairs: int
    with_model: float | None
    model_pairs: int
    tie_rate: float
    cant_tell_rate: float
    median_seconds: float | None


@dataclass(frozen=True)
class PairKappa:
    """Cohen's kappa of two annotators over the pairs both answered."""

    a: str
    b: str
    kappa: float | None
    shared: int


@dataclass(frozen=True)
class DisputedPair:
    """A pair the annotators answered differently."""

    query_id: int
    answers: dict[str, str]
    """Annotator -> 'A', 'B', 'equal' or "can't tell" (item A, B in stored order)."""
    entropy: float
    ruling: str | None


@dataclass(frozen=True)
class Agreement:
    """A project's agreement report."""

    project: str
    labels_per_pair: int
    alpha: float | None
    """Krippendorff's alpha (nominal); None with fewer than two answers on any pair or one category only."""
    pairs_with_several: int
    annotators: list[AnnotatorAgreement]
    kappas: list[PairKappa]
    disputed: list[DisputedPair]
    model_version: int | None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _word(pref: float | None) -> str:
    return {1.0: "A", 0.0: "B", 0.5: "equal"}.get(pref, "can't tell") if pref is not None else "can't tell"


def _entropy(values: list[Any]) -> float:
    counts = np.array(list(Counter(values).values()), dtype=float)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def krippendorff_alpha(by_annotator: dict[str, dict[int, float | None]]) -> tuple[float | None, int]:
    """Nominal alpha over the pairs with two or more answers; (alpha, such pairs)."""
    import krippendorff

    units = sorted({q for answers in by_annotator.values() for q in answers})
    names = sorted(by_annotator)
    data = np.full((len(names), len(units)), np.nan)
    column = {q: j for j, q in enumerate(units)}
    for i, name in enumerate(names):
        for q, pref in by_annotator[name].items():
            if pref is not None:
                data[i, column[q]] = _CODE[float(pref)]
    several = int(((~np.isnan(data)).sum(axis=0) >= 2).sum()) if units else 0
    if several == 0 or len(np.unique(data[~np.isnan(data)])) < 2:
        return None, several
    alpha = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    return (float(alpha) if np.isfinite(alpha) else None), several


def cohen_kappas(by_annotator: dict[str, dict[int, float | None]]) -> list[PairKappa]:
    """Cohen's kappa of every two annotators with :data:`MIN_SHARED` or more strict-or-equal answers in common."""
    from sklearn.metrics import cohen_kappa_score

    out = []
    for a, b in itertools.combinations(sorted(by_annotator), 2):
        shared = sorted(
            q
            for q in by_annotator[a].keys() & by_annotator[b].keys()
            if by_annotator[a][q] is not None and by_annotator[b][q] is not None
        )
        if len(shared) < MIN_SHARED:
            continue
        ya = [_CODE[float(by_annotator[a][q])] for q in shared]
        yb = [_CODE[float(by_annotator[b][q])] for q in shared]
        if len(set(ya) | set(yb)) < 2:
            kappa = None  # one category only: agreement by chance is certain, kappa undefined
        else:
            value = cohen_kappa_score(ya, yb, labels=[0, 1, 2])
            kappa = float(value) if np.isfinite(value) else None
        out.append(PairKappa(a, b, kappa, len(shared)))
    return out


def _model_prefs(
    studio: Studio, project: Project, labels: list[tuple[int, str]], pairs: dict[int, tuple[int, int]]
) -> tuple[int, dict[tuple[int, str], float]] | None:
    """The active reward model's P(item A preferred) for labeled pairs, by (query id, annotator),
    with its version. A personal model answers as each annotator would; any other the same for all."""
    from app.services.model_registry import active_model

    found = active_model(studio, project.id)
    if found is None or not labels:
        return None
    record, model = found
    queries = sorted({q for q, _ in labels})
    if record.kind == PERSONAL:
        from app.services.personal import item_features

        ids = sorted({i for q in queries for i in pairs[q]})
        feats = item_features(studio, project, ids, (model.meta or {}).get("encoder"))
        row = {item: r for r, item in enumerate(ids)}
        p = model.predict_pref(
            feats[[row[pairs[q][0]] for q, _ in labels]],
            feats[[row[pairs[q][1]] for q, _ in labels]],
            [name for _, name in labels],
        )
        return record.version, {key: float(v) for key, v in zip(labels, p, strict=True)}
    if project.kind is ProjectKind.text:
        from rlhf_core.rewards.text import TextPreferences

        with session_scope(studio.engine) as session:
            items = repo.items_by_id(session, sorted({i for q in queries for i in pairs[q]}))
        prefs = TextPreferences.from_lists(
            [items[pairs[q][0]].prompt or "" for q in queries],
            [items[pairs[q][0]].text or "" for q in queries],
            [items[pairs[q][1]].text or "" for q in queries],
            np.zeros(len(queries)),
        )
        p = model.predict_pref(prefs)
    else:
        from app.services.clip_data import project_data
        from rlhf_core.rewards.preferences import Preferences

        data = project_data(studio, project)
        prefs = Preferences(
            data.segments,
            data.rows([pairs[q][0] for q in queries]),
            data.rows([pairs[q][1] for q in queries]),
            np.zeros(len(queries)),
        )
        p = model.predict_pref(prefs)
    by_query = {q: float(v) for q, v in zip(queries, np.asarray(p), strict=True)}
    return record.version, {(q, name): by_query[q] for q, name in labels}


def agreement(studio: Studio, project_name: str, *, disputed: int = 20, with_model: bool = True) -> Agreement:
    """The agreement report of a project (see the module docstring)."""
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        rows = repo.label_rows(session, project.id)
        pairs = {q: (a, b) for (a, b), q in repo.query_ids_by_pair(session, project.id).items()}
    by_annotator: dict[str, dict[int, float | None]] = defaultdict(dict)
    by_query: dict[int, dict[str, float | None]] = defaultdict(dict)
    for r in rows:
        by_annotator[r.annotator][r.query_id] = r.pref
        by_query[r.query_id][r.annotator] = r.pref
    alpha, several = krippendorff_alpha(by_annotator)
    notes = []
    if several == 0:
        notes.append(
            "no pair has answers from two people yet: set labels per pair to 2 or more "
            f"(rlhf project set {project.name} --labels-per-pair 2) to measure agreement"
            if project.labels_per_query < 2
            else f"no pair has answers from two people yet ({project.labels_per_query} per pair are asked "
            "for): agreement shows once a second person has answered a pair"
        )
    model = None
    if with_model:
        strict = [(r.query_id, r.annotator) for r in rows if r.pref in (0.0, 1.0)]
        model = _model_prefs(studio, project, strict, pairs)
    model_version, model_pref = model if model is not None else (None, {})

    per: list[AnnotatorAgreement] = []
    grouped: dict[str, list[repo.LabelRow]] = defaultdict(list)
    for r in rows:
        grouped[r.annotator].append(r)
    for name in sorted(grouped):
        mine = grouped[name]
        agree = seen = gold_ok = gold_n = model_ok = model_n = 0
        for r in mine:
            if r.pref is None:
                continue
            others = [p for other, p in by_query[r.query_id].items() if other != name and p is not None]
            top = Counter(others).most_common(2)
            if top and (len(top) == 1 or top[0][1] > top[1][1]):
                seen += 1
                agree += int(top[0][0] == r.pref)
            if r.gold_pref is not None:
                gold_n += 1
                gold_ok += int(r.gold_pref == r.pref)
            if (r.query_id, name) in model_pref:
                model_n += 1
                model_ok += int((model_pref[(r.query_id, name)] > 0.5) == (r.pref == 1.0))
        seconds = [r.seconds for r in mine if r.seconds is not None and r.seconds >= 0]
        per.append(
            AnnotatorAgreement(
                annotator=name,
                labels=len(mine),
                with_majority=agree / seen if seen else None,
                majority_pairs=seen,
                with_gold=gold_ok / gold_n if gold_n else None,
                gold_pairs=gold_n,
                with_model=model_ok / model_n if model_n else None,
                model_pairs=model_n,
                tie_rate=sum(r.choice == Choice.equal for r in mine) / len(mine),
                cant_tell_rate=sum(r.choice == Choice.cant_tell for r in mine) / len(mine),
                median_seconds=float(np.median(seconds)) if seconds else None,
            )
        )

    rulings = {r.query_id: r.adjudicated_pref for r in rows}
    gold = {r.query_id for r in rows if r.gold_pref is not None}
    disputes = []
    for q, answers in by_query.items():
        if q in gold:  # a gold pair's answer is known; listing its answers would give it away
            continue
        values = [_word(p) for p in answers.values()]
        if len(answers) >= 2 and len(set(values)) > 1:
            ruling = rulings.get(q)
            disputes.append(
                DisputedPair(
                    q,
                    {name: _word(p) for name, p in sorted(answers.items())},
                    _entropy(values),
                    None if ruling is None else _word(ruling),
                )
            )
    disputes.sort(key=lambda d: (-d.entropy, -len(d.answers), d.query_id))
    return Agreement(
        project=project.name,
        labels_per_pair=int(project.labels_per_query),
        alpha=alpha,
        pairs_with_several=several,
        annotators=per,
        kappas=cohen_kappas(by_annotator),
        disputed=disputes[:disputed],
        model_version=model_version,
        notes=notes,
    )


def agreement_state(studio: Studio, project_name: str) -> tuple:
    """What :func:`agreement` depends on, short of rulings: the project's answers, gold pairs,
    labels per pair and active reward model. Equal states give equal reports, so a page can
    keep a report until this changes (a cheap query against a computation of seconds on a
    project of a few hundred thousand labels)."""
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        model = repo.active_reward_model(session, project.id)
        return (
            project.id,
            int(project.labels_per_query),
            None if model is None else model.id,
            *repo.answers_state(session, project.id),
        )


def with_current_rulings(studio: Studio, report: Agreement) -> Agreement:
    """The report with each disputed pair's ruling as stored now (a ruling changes nothing else
    in it, so a kept report need not be computed again after one)."""
    with session_scope(studio.engine) as session:
        project = repo.get_project(session, report.project)
        ruled = {r.query_id: _word(r.pref) for r in repo.rulings(session, project.id)}
    disputed = [replace(d, ruling=ruled.get(d.query_id)) for d in report.disputed]
    return replace(report, disputed=disputed)


def adjudicate(studio: Studio, project_name: str, query_id: int, answer: str | None, by: str | None = None) -> None:
    """Rule on a disputed pair: ``answer`` 'a', 'b' or 'equal' (items in stored order), None to withdraw.

    Training then uses the ruling for that pair instead of its labels.
    """
    if answer is not None and answer not in _ANSWER:
        raise StudioError(f"a ruling is one of {', '.join(_ANSWER)}, got {answer!r}")
    with session_scope(studio.engine, write=True) as session:
        project = repo.get_project(session, project_name)
        judge = repo.find_annotator(session, by) if by else None
        repo.adjudicate(
            session, project.id, int(query_id), None if answer is None else _ANSWER[answer], judge.id if judge else None
        )


def annotator_weights(studio: Studio, project_name: str) -> dict[int, float]:
    """Each annotator's weight in a pooled model's loss: their agreement with the majority of the
    others (1 for one who shares no pair with anyone: nothing says they disagree)."""
    report = agreement(studio, project_name, disputed=0, with_model=False)
    with session_scope(studio.engine) as session:
        return {
            repo.find_annotator(session, a.annotator).id: 1.0 if a.with_majority is None else float(a.with_majority)
            for a in report.annotators
        }


def annotators_below(studio: Studio, project_name: str, min_agreement: float) -> tuple[list[int], list[str]]:
    """Annotators whose agreement with the majority is below ``min_agreement``: (ids, names).

    Annotators without pairs shared with others are kept (nothing says they disagree).
    """
    if not 0.0 <= min_agreement <= 1.0:
        raise StudioError(f"a minimum agreement lies in [0, 1], got {min_agreement}")
    report = agreement(studio, project_name, disputed=0, with_model=False)
    low = {a.annotator for a in report.annotators if a.with_majority is not None and a.with_majority < min_agreement}
    with session_scope(studio.engine) as session:
        ids = [repo.find_annotator(session, name).id for name in sorted(low)]
    return ids, sorted(low)


@dataclass(frozen=True)
class PairView:
    """What a disputed pair compares, in stored order (item A, item B), for an adjudicator."""

    query_id: int
    prompt: str | None
    text_a: str | None
    text_b: str | None
    clip: Any
    """Path of the side-by-side clip (A left, B right) of a clip project, or None."""


def pair_view(studio: Studio, project_name: str, query_id: int) -> PairView:
    """The two items of a pair of a project, item A first."""
    from app.services.clips import ClipUnavailableError, ensure_clip

    with session_scope(studio.engine) as session:
        project = repo.get_project(session, project_name)
        query, a, b = repo.query_with_items(session, query_id)
        if query.project_id != project.id:
            raise StudioError(f"pair {query_id} is not in project {project_name!r}")
    if project.kind is ProjectKind.text:
        return PairView(query_id, a.prompt, a.text, b.text, None)
    try:
        clip = ensure_clip(studio, a.clip_file, b.clip_file, float(project.config.get("fps", 10)))
    except ClipUnavailableError:
        clip = None
    return PairView(query_id, None, None, None, clip)


def set_gold(studio: Studio, project_name: str, answers: dict[int, str | None]) -> int:
    """Make pairs gold with their known answers ('a', 'b', 'equal'; None: ordinary again).
    Returns how many pairs of the project are gold now."""
    bad = {q: a for q, a in answers.items() if a is not None and a not in _ANSWER}
    if bad:
        raise StudioError(f"a gold answer is one of {', '.join(_ANSWER)}, got {bad}")
    with session_scope(studio.engine, write=True) as session:
        project = repo.get_project(session, project_name)
        repo.set_gold(session, project.id, {q: None if a is None else _ANSWER[a] for q, a in answers.items()})
        return repo.gold_count(session, project.id)
