"""Repository functions: every read and write the use cases make, by aggregate.

Each function takes a ``Session`` and never opens, commits or closes one: the caller owns
the unit of work (see ``db.engine.session_scope``). No ORM row is built or changed outside
``db``. The functions live in one module per aggregate and are gathered here, so a caller
writes ``repo.record_label(...)``:

- :mod:`db.repo.choices`: the on-screen choice -> preference rule;
- :mod:`db.repo.projects`: projects, annotators, items, trajectories, the pairs to label;
- :mod:`db.repo.labeling`: serving queries in a side order, labels, comparisons, priorities;
- :mod:`db.repo.text`: text projects' items and judgements;
- :mod:`db.repo.registry`: reward model and policy versions;
- :mod:`db.repo.jobs`: background jobs.
"""

from db.repo.choices import (
    ANSWERED as ANSWERED,
    pref_for as pref_for,
)
from db.repo.jobs import (
    ACTIVE_JOB_STATUSES as ACTIVE_JOB_STATUSES,
    STALE_AFTER as STALE_AFTER,
    active_job as active_job,
    cancel_requested as cancel_requested,
    create_job as create_job,
    expire_stale_jobs as expire_stale_jobs,
    fail_job as fail_job,
    finish_job as finish_job,
    get_job as get_job,
    heartbeat as heartbeat,
    is_stale as is_stale,
    latest_job as latest_job,
    report_progress as report_progress,
    request_cancel as request_cancel,
    set_job_pid as set_job_pid,
    start_job as start_job,
)
from db.repo.labeling import (
    AnnotatorProgress as AnnotatorProgress,
    Comparison as Comparison,
    DEFAULT_CLAIM_TTL as DEFAULT_CLAIM_TTL,
    RecordedLabel as RecordedLabel,
    ServedQuery as ServedQuery,
    UndoneLabel as UndoneLabel,
    add_imported_label as add_imported_label,
    add_queries as add_queries,
    annotator_progress as annotator_progress,
    claim_next_query as claim_next_query,
    comparison_count as comparison_count,
    comparisons as comparisons,
    existing_pairs as existing_pairs,
    labels_by_annotator as labels_by_annotator,
    pending_queries as pending_queries,
    query_ids_by_pair as query_ids_by_pair,
    query_with_items as query_with_items,
    record_label as record_label,
    restore_query_priorities as restore_query_priorities,
    set_query_priorities as set_query_priorities,
    top_priority as top_priority,
    undo_last_label as undo_last_label,
    unlabeled_queries as unlabeled_queries,
)
from db.repo.projects import (
    NewSegment as NewSegment,
    NewTrajectory as NewTrajectory,
    ProjectCounts as ProjectCounts,
    add_text_items as add_text_items,
    add_trajectories as add_trajectories,
    create_project as create_project,
    find_project as find_project,
    get_or_create_annotator as get_or_create_annotator,
    get_project as get_project,
    items_by_id as items_by_id,
    list_projects as list_projects,
    project_counts as project_counts,
    project_items as project_items,
    set_project_config as set_project_config,
)
from db.repo.registry import (
    activate_reward_model as activate_reward_model,
    active_reward_model as active_reward_model,
    get_policy as get_policy,
    policies as policies,
    register_policy as register_policy,
    register_reward_model as register_reward_model,
    reward_model_by_version as reward_model_by_version,
    reward_models as reward_models,
    withdraw_policy as withdraw_policy,
    withdraw_reward_model as withdraw_reward_model,
)
from db.repo.text import (
    TextJudgement as TextJudgement,
    text_item_ids as text_item_ids,
    text_judgements as text_judgements,
)
