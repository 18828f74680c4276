"""Background jobs' rows: one active job per kind and project, claiming, progress, cancel, death."""

from __future__ import annotations

from datetime import timedelta

from db import repo
from db.engine import session_scope
from db.models import Job, JobStatus, Worker, utcnow
from tests.db.conftest import seed_project


def test_a_job_runs_from_queued_to_succeeded_and_progress_never_goes_back(store):
    with session_scope(store, write=True) as s:
        job_id = repo.create_job(s, None, "train-classifier", {"mode": "lora"}).id
        assert repo.active_job(s, None, "train-classifier").id == job_id
    with session_scope(store, write=True) as s:
        assert repo.start_job(s, job_id, pid=42) == ("train-classifier", {"mode": "lora"})
        assert repo.start_job(s, job_id, pid=43) is None  # one worker only
    with session_scope(store, write=True) as s:
        assert repo.report_progress(s, job_id, 0.6, "fit: 6/10") is False
        repo.report_progress(s, job_id, 0.4, "fit: 4/10")  # late report: the bar stays
        assert repo.finish_job(s, job_id, JobStatus.succeeded, {"accuracy": 0.9}, None, "done") is JobStatus.succeeded
    with session_scope(store) as s:
        job = repo.get_job(s, job_id)
        assert (job.status, job.progress, job.pid, job.result) == (JobStatus.succeeded, 1.0, 42, {"accuracy": 0.9})
        assert repo.active_job(s, None, "train-classifier") is None


def test_cancel_stops_a_queued_job_at_once_and_asks_a_running_one(store):
    first, second = seed_project(store, name="a"), seed_project(store, name="b")
    with session_scope(store, write=True) as s:
        queued = repo.create_job(s, first, "train-reward", {}).id
        running = repo.create_job(s, second, "train-reward", {}).id
        repo.start_job(s, running, pid=1)
        repo.request_cancel(s, queued)
        repo.request_cancel(s, running)
    with session_scope(store, write=True) as s:
        assert repo.get_job(s, queued).status is JobStatus.cancelled
        assert repo.get_job(s, running).status is JobStatus.running and repo.cancel_requested(s, running)
        assert repo.report_progress(s, running, 0.5, "fit: 1/2") is True  # the worker learns it on its next report


def test_a_silent_worker_is_declared_dead_and_its_late_verdict_does_not_overwrite_that(store):
    project = seed_project(store)
    with session_scope(store, write=True) as s:
        job_id = repo.create_job(s, project, "train-policy", {}).id
        repo.start_job(s, job_id, pid=1)
        s.get(Job, job_id).heartbeat_at = utcnow() - repo.STALE_AFTER - timedelta(seconds=1)
    with session_scope(store, write=True) as s:
        assert repo.is_stale(repo.get_job(s, job_id))
        repo.expire_stale_jobs(s)
    with session_scope(store, write=True) as s:
        assert repo.get_job(s, job_id).status is JobStatus.failed
        assert repo.finish_job(s, job_id, JobStatus.succeeded, {}, None, "done") is JobStatus.failed


def _reward_model(s, project: int, job_id: int | None):
    return repo.register_reward_model(
        s, project, kind="bt", config={}, label_count=1, label_hash="h", metrics={}, path="m", job_id=job_id
    )


def _die(s, job_id: int) -> None:
    s.get(Job, job_id).heartbeat_at = utcnow() - repo.STALE_AFTER - timedelta(seconds=1)


def test_a_round_whose_worker_died_midway_gives_back_the_model_active_before_it(store):
    # a loop round registers its reward model, then trains the policy; killed there (no
    # Python left to undo it), the expiry sets the round's model aside and says so
    project = seed_project(store)
    with session_scope(store, write=True) as s:
        _reward_model(s, project, None)  # version 1, active
        job_id = repo.create_job(s, project, "loop-round", {}).id
        repo.start_job(s, job_id, pid=1)
        assert repo.may_register(s, job_id)
        repo.note_reward_before(s, job_id, 1)
        _reward_model(s, project, job_id)  # version 2, active
        _die(s, job_id)
    with session_scope(store, write=True) as s:
        repo.expire_stale_jobs(s)
    with session_scope(store) as s:
        job = repo.get_job(s, job_id)
        assert job.status is JobStatus.failed and not repo.may_register(s, job_id)
        assert "(version 2) was set aside; version 1 is active again" in job.error
        assert repo.active_reward_model(s, project).version == 1
        assert [r.version for r in repo.reward_models(s, project)] == [2, 1]  # kept, inactive


def test_a_dead_job_that_registers_at_its_end_keeps_its_model_and_says_so(store):
    project = seed_project(store)
    with session_scope(store, write=True) as s:
        job_id = repo.create_job(s, project, "train-reward", {}).id
        repo.start_job(s, job_id, pid=1)
        _reward_model(s, project, job_id)  # registered, then killed before the job's row was finished
        _die(s, job_id)
        quiet = repo.create_job(s, project, "train-policy", {}).id
        repo.start_job(s, quiet, pid=2)
        _die(s, quiet)
    with session_scope(store, write=True) as s:
        repo.expire_stale_jobs(s)
    with session_scope(store) as s:
        assert "reward model version 1 it registered is kept" in repo.get_job(s, job_id).error
        assert repo.active_reward_model(s, project).version == 1
        assert repo.get_job(s, quiet).error.endswith("the active model is unchanged")


def test_a_withdrawn_round_leaves_a_newer_model_of_another_job_active(store):
    project = seed_project(store)
    with session_scope(store, write=True) as s:
        _reward_model(s, project, None)  # 1
        _reward_model(s, project, None)  # 2: the round's
        _reward_model(s, project, None)  # 3: a Retrain on the Train page meanwhile
        assert repo.withdraw_reward_model(s, project, 2, 1) == ("m", False)
    with session_scope(store, write=True) as s:
        assert repo.active_reward_model(s, project).version == 3
        assert repo.withdraw_reward_model(s, project, 3, 1) == ("m", True)  # the active one: 1 is back
    with session_scope(store) as s:
        assert repo.active_reward_model(s, project).version == 1


def _claim_all(store, worker_id: int, taken: list, barrier) -> None:
    barrier.wait()
    while True:
        with session_scope(store, write=True) as s:
            claimed = repo.claim_next_job(s, worker_id, pid=worker_id)
        if claimed is None:
            return
        taken.append((claimed[0], worker_id))


def test_workers_claiming_at_once_never_take_the_same_job(store):
    import threading

    project = seed_project(store)
    with session_scope(store, write=True) as s:
        ids = [repo.create_job(s, project, "train-reward", {"n": i}).id for i in range(40)]
        workers = [repo.register_worker(s, "host", None) for _ in range(4)]
    taken: list[tuple[int, int]] = []
    barrier = threading.Barrier(len(workers))
    threads = [threading.Thread(target=_claim_all, args=(store, w, taken, barrier)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert sorted(job for job, _ in taken) == ids  # every job once, none twice
    with session_scope(store) as s:
        for job_id, worker_id in taken:
            job = repo.get_job(s, job_id)
            assert (job.status, job.worker_id, job.pid) == (JobStatus.running, worker_id, worker_id)
        assert repo.queued_jobs(s) == []


def test_the_app_reserves_workers_for_its_queue_up_to_the_cap(store):
    project = seed_project(store)
    with session_scope(store, write=True) as s:
        assert repo.reserve_workers(s, "h", cap=2) == []  # nothing queued: no worker
        for i in range(3):
            repo.create_job(s, project, "train-reward", {"n": i})
    with session_scope(store, write=True) as s:
        first = repo.reserve_workers(s, "h", cap=2)
    with session_scope(store, write=True) as s:
        assert len(first) == 2 and repo.reserve_workers(s, "h", cap=2) == []  # two alive: the cap
        assert len(repo.live_workers(s)) == 2
        repo.stop_worker(s, first[0])
    with session_scope(store, write=True) as s:
        assert len(repo.reserve_workers(s, "h", cap=2)) == 1  # one stopped: one more may start
    with session_scope(store, write=True) as s:
        idle = repo.register_worker(s, "other", 7)  # an idle `rlhf worker` elsewhere takes a job too
        assert repo.reserve_workers(s, "h", cap=10) == []  # 3 queued, 3 workers idle... (2 live + idle)
        assert idle in [w.id for w in repo.live_workers(s)]


def test_a_queued_job_fails_only_while_no_worker_is_alive(store):
    project = seed_project(store)
    with session_scope(store, write=True) as s:
        job_id = repo.create_job(s, project, "train-policy", {}).id
        s.get(Job, job_id).created_at = utcnow() - repo.STALE_AFTER - timedelta(seconds=1)
        worker = repo.register_worker(s, "h", 1)
    with session_scope(store, write=True) as s:
        repo.expire_stale_jobs(s)  # a worker is alive (busy elsewhere): the job waits its turn
        assert repo.get_job(s, job_id).status is JobStatus.queued
        repo.stop_worker(s, worker)
    with session_scope(store, write=True) as s:
        repo.expire_stale_jobs(s)  # stopped a moment ago (being restarted?): the queue waits
        assert repo.get_job(s, job_id).status is JobStatus.queued
        row = s.get(Worker, worker)
        row.heartbeat_at = row.stopped_at = utcnow() - repo.STALE_AFTER - timedelta(seconds=1)
    with session_scope(store, write=True) as s:
        repo.expire_stale_jobs(s)  # no worker seen for a minute: nobody will take it
    with session_scope(store) as s:
        job = repo.get_job(s, job_id)
        assert job.status is JobStatus.failed and "rlhf worker" in job.error


def test_a_draining_worker_stops_only_when_nothing_is_queued(store):
    project = seed_project(store)
    with session_scope(store, write=True) as s:
        worker = repo.register_worker(s, "h", 1, spawned=True)
        job_id = repo.create_job(s, project, "train-reward", {}).id  # submitted while the worker looked away
    with session_scope(store, write=True) as s:
        assert repo.stop_worker_if_idle(s, worker) is False  # it sees the job and stays
        assert [w.id for w in repo.live_workers(s)] == [worker]
        assert repo.claim_next_job(s, worker, 1)[0] == job_id
    with session_scope(store, write=True) as s:
        assert repo.stop_worker_if_idle(s, worker) is True
        assert repo.live_workers(s) == []
