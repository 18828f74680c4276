"""Repository functions: every read and write the use cases make, by aggregate.

Each function takes a ``Session`` and never opens, commits or closes one: the caller owns
the unit of work (see ``db.engine.session_scope``). No ORM row is built or changed outside
``db``. The functions live in one module per aggregate and are gathered here, so a caller
writes ``repo.record_label(...)``:

- :mod:`db.repo.accounts`: accounts, project memberships and login sessions;
- :mod:`db.repo.choices`: the on-screen choice -> preference rule;
- :mod:`db.repo.projects`: projects, annotators, items, trajectories, the pairs to label;
- :mod:`db.repo.labeling`: serving queries in a side order, labels, comparisons, priorities;
- :mod:`db.repo.text`: text projects' items and judgements;
- :mod:`db.repo.registry`: reward model and policy versions;
- :mod:`db.repo.jobs`: background jobs.
"""

from db.repo.accounts import (
    REMOVED_ROLE as REMOVED_ROLE,
)
from db.repo.accounts import (
    AccountRow as AccountRow,
)
from db.repo.accounts import (
    account_count as account_count,
)
from db.repo.accounts import (
    add_login_session as add_login_session,
)
from db.repo.accounts import (
    end_expired_sessions as end_expired_sessions,
)
from db.repo.accounts import (
    end_login_session as end_login_session,
)
from db.repo.accounts import (
    end_sessions_of as end_sessions_of,
)
from db.repo.accounts import (
    find_annotator as find_annotator,
)
from db.repo.accounts import (
    leave_projects as leave_projects,
)
from db.repo.accounts import (
    list_accounts as list_accounts,
)
from db.repo.accounts import (
    lock_admins as lock_admins,
)
from db.repo.accounts import (
    lock_annotator as lock_annotator,
)
from db.repo.accounts import (
    login_session as login_session,
)
from db.repo.accounts import (
    member_projects as member_projects,
)
from db.repo.accounts import (
    project_members as project_members,
)
from db.repo.accounts import (
    remove_account as remove_account,
)
from db.repo.accounts import (
    require_annotator as require_annotator,
)
from db.repo.accounts import (
    set_account as set_account,
)
from db.repo.accounts import (
    set_memberships as set_memberships,
)
from db.repo.accounts import (
    touch_login_session as touch_login_session,
)
from db.repo.choices import (
    ANSWERED as ANSWERED,
)
from db.repo.choices import (
    pref_for as pref_for,
)
from db.repo.jobs import (
    ACTIVE_JOB_STATUSES as ACTIVE_JOB_STATUSES,
)
from db.repo.jobs import (
    STALE_AFTER as STALE_AFTER,
)
from db.repo.jobs import (
    active_job as active_job,
)
from db.repo.jobs import (
    cancel_requested as cancel_requested,
)
from db.repo.jobs import (
    claim_next_job as claim_next_job,
)
from db.repo.jobs import (
    create_job as create_job,
)
from db.repo.jobs import (
    create_job_unless_active as create_job_unless_active,
)
from db.repo.jobs import (
    expire_stale_jobs as expire_stale_jobs,
)
from db.repo.jobs import (
    fail_job as fail_job,
)
from db.repo.jobs import (
    finish_job as finish_job,
)
from db.repo.jobs import (
    get_job as get_job,
)
from db.repo.jobs import (
    heartbeat as heartbeat,
)
from db.repo.jobs import (
    is_stale as is_stale,
)
from db.repo.jobs import (
    latest_job as latest_job,
)
from db.repo.jobs import (
    live_workers as live_workers,
)
from db.repo.jobs import (
    may_register as may_register,
)
from db.repo.jobs import (
    note_reward_before as note_reward_before,
)
from db.repo.jobs import (
    queued_jobs as queued_jobs,
)
from db.repo.jobs import (
    register_worker as register_worker,
)
from db.repo.jobs import (
    report_progress as report_progress,
)
from db.repo.jobs import (
    request_cancel as request_cancel,
)
from db.repo.jobs import (
    reserve_workers as reserve_workers,
)
from db.repo.jobs import (
    running_jobs as running_jobs,
)
from db.repo.jobs import (
    set_job_pid as set_job_pid,
)
from db.repo.jobs import (
    start_job as start_job,
)
from db.repo.jobs import (
    stop_worker as stop_worker,
)
from db.repo.jobs import (
    stop_worker_if_idle as stop_worker_if_idle,
)
from db.repo.jobs import (
    worker_heartbeat as worker_heartbeat,
)
from db.repo.jobs import (
    workers_seen_recently as workers_seen_recently,
)
from db.repo.labeling import (
    DEFAULT_CLAIM_TTL as DEFAULT_CLAIM_TTL,
)
from db.repo.labeling import (
    HALF_FINISHED_WINDOW as HALF_FINISHED_WINDOW,
)
from db.repo.labeling import (
    PACE_LABELS as PACE_LABELS,
)
from db.repo.labeling import (
    AnnotatorProgress as AnnotatorProgress,
)
from db.repo.labeling import (
    Comparison as Comparison,
)
from db.repo.labeling import (
    Judgement as Judgement,
)
from db.repo.labeling import (
    LabelRow as LabelRow,
)
from db.repo.labeling import (
    RecordedLabel as RecordedLabel,
)
from db.repo.labeling import (
    Ruling as Ruling,
)
from db.repo.labeling import (
    ServedQuery as ServedQuery,
)
from db.repo.labeling import (
    UndoneLabel as UndoneLabel,
)
from db.repo.labeling import (
    add_imported_label as add_imported_label,
)
from db.repo.labeling import (
    add_queries as add_queries,
)
from db.repo.labeling import (
    adjudicate as adjudicate,
)
from db.repo.labeling import (
    annotator_progress as annotator_progress,
)
from db.repo.labeling import (
    answers_state as answers_state,
)
from db.repo.labeling import (
    claim_next_query as claim_next_query,
)
from db.repo.labeling import (
    comparison_count as comparison_count,
)
from db.repo.labeling import (
    comparisons as comparisons,
)
from db.repo.labeling import (
    existing_pairs as existing_pairs,
)
from db.repo.labeling import (
    gold_count as gold_count,
)
from db.repo.labeling import (
    judgements as judgements,
)
from db.repo.labeling import (
    label_rows as label_rows,
)
from db.repo.labeling import (
    labels_by_annotator as labels_by_annotator,
)
from db.repo.labeling import (
    pending_queries as pending_queries,
)
from db.repo.labeling import (
    query_ids_by_pair as query_ids_by_pair,
)
from db.repo.labeling import (
    query_with_items as query_with_items,
)
from db.repo.labeling import (
    record_label as record_label,
)
from db.repo.labeling import (
    restore_query_priorities as restore_query_priorities,
)
from db.repo.labeling import (
    rulings as rulings,
)
from db.repo.labeling import (
    set_gold as set_gold,
)
from db.repo.labeling import (
    set_query_priorities as set_query_priorities,
)
from db.repo.labeling import (
    top_priority as top_priority,
)
from db.repo.labeling import (
    undo_last_label as undo_last_label,
)
from db.repo.labeling import (
    unlabeled_queries as unlabeled_queries,
)
from db.repo.projects import (
    NewSegment as NewSegment,
)
from db.repo.projects import (
    NewTrajectory as NewTrajectory,
)
from db.repo.projects import (
    ProjectCounts as ProjectCounts,
)
from db.repo.projects import (
    add_text_items as add_text_items,
)
from db.repo.projects import (
    add_trajectories as add_trajectories,
)
from db.repo.projects import (
    annotator_names as annotator_names,
)
from db.repo.projects import (
    create_project as create_project,
)
from db.repo.projects import (
    find_project as find_project,
)
from db.repo.projects import (
    get_or_create_annotator as get_or_create_annotator,
)
from db.repo.projects import (
    get_project as get_project,
)
from db.repo.projects import (
    items_by_id as items_by_id,
)
from db.repo.projects import (
    list_projects as list_projects,
)
from db.repo.projects import (
    project_counts as project_counts,
)
from db.repo.projects import (
    project_items as project_items,
)
from db.repo.projects import (
    set_labels_per_query as set_labels_per_query,
)
from db.repo.projects import (
    set_project_config as set_project_config,
)
from db.repo.registry import (
    activate_reward_model as activate_reward_model,
)
from db.repo.registry import (
    active_reward_model as active_reward_model,
)
from db.repo.registry import (
    classifiers as classifiers,
)
from db.repo.registry import (
    get_classifier as get_classifier,
)
from db.repo.registry import (
    get_policy as get_policy,
)
from db.repo.registry import (
    policies as policies,
)
from db.repo.registry import (
    register_classifier as register_classifier,
)
from db.repo.registry import (
    register_policy as register_policy,
)
from db.repo.registry import (
    register_reward_model as register_reward_model,
)
from db.repo.registry import (
    reward_model_by_version as reward_model_by_version,
)
from db.repo.registry import (
    reward_models as reward_models,
)
from db.repo.registry import (
    withdraw_policy as withdraw_policy,
)
from db.repo.registry import (
    withdraw_reward_model as withdraw_reward_model,
)
from db.repo.text import (
    ImportCounts as ImportCounts,
)
from db.repo.text import (
    TextImport as TextImport,
)
from db.repo.text import (
    TextJudgement as TextJudgement,
)
from db.repo.text import (
    bulk_labeled_text_project as bulk_labeled_text_project,
)
from db.repo.text import (
    text_item_ids as text_item_ids,
)
from db.repo.text import (
    text_judgements as text_judgements,
)
from db.repo.text import (
    text_key as text_key,
)
