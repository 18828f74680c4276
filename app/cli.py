"""The ``rlhf`` command line: every action of the app, for scripts, CI and bigger machines."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from app.config import Settings, Studio
from app.errors import USER_ERRORS, TrainingCancelledError
from app.services import reward_kinds
from app.services.demo import DEFAULT_ENV_ID
from app.services.reward_kinds import REWARD_KINDS
from db.models import Role

#: Set to 1 for the same effect as ``--debug``: errors keep their traceback.
DEBUG_ENV = "RLHF_DEBUG"
#: Scripted annotators: B-Pref's teachers, then the personas (rlhf_core.rewards.personas; kept
#: literal here so the CLI starts without the ML library).
SCRIPTED = ["oracle", "stochastic", "myopic", "mistake", "skip", "equal"] + [
    "concise", "detailed", "formal", "casual", "fast", "walls", "centered", "upright",
]  # fmt: skip
#: Seeds are what NumPy's generators take: non-negative integers.
SEED = click.IntRange(min=0)
#: Longest message an internal error's one line quotes.
_MAX_QUOTED = 300


def _printable(text: str) -> str:
    """``text`` as the terminal can show it: lone surrogates (from undecodable file names or
    file content) escaped instead of failing to print."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _os_error_message(exc: OSError) -> str:
    if exc.strerror and exc.filename is not None:
        return f"cannot use {exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


class StudioGroup(click.Group):
    """The ``rlhf`` group: every error a person can cause ends as one line ``Error: ...``, exit 1.

    Errors meant for people (``app.errors.USER_ERRORS``: the message says what to do) and
    operating-system errors (a file that cannot be written, a full disk) print their message;
    any other exception is a bug and says so in one line. ``--debug`` (or ``RLHF_DEBUG=1``)
    lets every traceback through instead. Click's own usage errors exit with status 2.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug") or (isinstance(exc, OSError) and exc.errno == errno.EPIPE):
                raise  # a closed pipe (`rlhf status | head`): click ends quietly
            raise click.ClickException(_printable(self._describe(exc))) from exc

    @staticmethod
    def _describe(exc: Exception) -> str:
        if isinstance(exc, USER_ERRORS):
            return str(exc) or type(exc).__name__
        if isinstance(exc, OSError):
            return _os_error_message(exc)
        quoted = (str(exc).strip().splitlines() or [""])[0]
        if len(quoted) > _MAX_QUOTED:
            quoted = quoted[:_MAX_QUOTED] + "..."
        detail = f"{type(exc).__name__}: {quoted}" if quoted else type(exc).__name__
        return f"internal error ({detail}); this is a bug: rerun with --debug for the traceback"


class _Bars:
    """One tqdm bar per stage of a long operation, fed by a use case's progress callback."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            self.close()  # a new stage: finish the bars of the earlier ones
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit="", leave=True, file=sys.stderr)
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


@contextmanager
def _reporting(cancelled: str | None = None, *cancel_errors: type[BaseException]) -> Iterator[_Bars]:
    """Progress bars for a long use case; given ``cancelled``, a cancel or Ctrl-C becomes that
    one line. (Errors are reported by :class:`StudioGroup`.)"""
    stops = (*cancel_errors, KeyboardInterrupt) if cancelled is not None else ()
    bars = _Bars()
    try:
        yield bars
    except stops as exc:
        raise click.ClickException(str(cancelled)) from exc
    finally:
        bars.close()


def _modules(value: str | None) -> list[str] | None:
    """``query, value`` -> ["query", "value"] (None stays None)."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("name at least one layer, e.g. query,value", param_hint="--target-modules")
    return names


@click.group(cls=StudioGroup)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data folder (overrides RLHF_DATA_DIR; default ./data).",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar=DEBUG_ENV,
    help=f"Show the full traceback of any error (also: {DEBUG_ENV}=1).",
)
@click.option(
    "--device",
    default=None,
    envvar="RLHF_DEVICE",
    help="Where models train and score: auto (CUDA, then MPS, then the CPU; the default), cpu, cuda, cuda:N or "
    "mps (also: RLHF_DEVICE). Jobs the app runs read RLHF_DEVICE.",
)
@click.version_option(package_name="rlhf-studio", prog_name="rlhf")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, debug: bool, device: str | None) -> None:
    """rlhf-studio: teach models from human preferences.

    Errors print one line, `Error: ...`, with what to do (exit status 1; 2 for a wrong
    command line); --debug shows the traceback instead.
    """
    # the library logs what it did (encoders loaded, DQN speed, fallbacks): warnings always, the rest with --debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if device:  # read where a model is built (rlhf_core.devices), in this process and in workers it starts
        os.environ["RLHF_DEVICE"] = device
    ctx.obj = Studio(Settings.from_env(data_dir))


@cli.command()
@click.option("--project", "name", default="demo", show_default=True, help="Project name.")
@click.option("--env", "env_id", default=DEFAULT_ENV_ID, show_default=True, help="Gymnasium environment id.")
@click.option("--segments", default=200, show_default=True, help="Number of clips (segments) to cut.")
@click.option("--queries", default=300, show_default=True, help="Number of pairs to compare.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of rollouts, segments and pairs.")
@click.option("--workers", default=2, show_default=True, help="Worker processes for rollouts and clips.")
@click.pass_obj
def demo(studio: Studio, name: str, env_id: str, segments: int, queries: int, seed: int, workers: int) -> None:
    """Create a demo project with clips ready to label (does nothing if it exists)."""
    from app.services.demo import create_demo_project

    with _reporting() as bars:
        result = create_demo_project(
            studio, name, env_id, n_segments=segments, n_queries=queries, seed=seed, workers=workers, on_progress=bars
        )
    c = result.counts
    verb = "created" if result.created else "already exists, nothing added"
    click.echo(f"project {result.project!r} {verb}: {c.items} segments, {c.queries} queries, {c.labels} labels")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def status(studio: Studio, as_json: bool) -> None:
    """Show each project's kind, environment and counts."""
    from app.services.projects import project_summaries

    rows = project_summaries(studio)
    if as_json:
        click.echo(json.dumps({"data_dir": str(studio.settings.data_dir), "projects": rows}, indent=2))
        return
    if not rows:
        click.echo(f"no projects in {studio.settings.data_dir}; create one with `rlhf demo`")
        return
    header = f"{'project':<20} {'kind':<11} {'env':<32} {'items':>6} {'queries':>8} {'labels':>7}"
    click.echo(header)
    for r in rows:
        env = r["env_id"] or "-"
        click.echo(f"{r['name']:<20} {r['kind']:<11} {env:<32} {r['items']:>6} {r['queries']:>8} {r['labels']:>7}")


@cli.command("label-synthetic")
@click.option("--project", "name", required=True, help="Project name.")
@click.option(
    "--teacher",
    "teacher_name",
    default="oracle",
    show_default=True,
    type=click.Choice(SCRIPTED),
    help="B-Pref scripted teacher (oracle, stochastic, myopic, mistake, skip, equal: clip projects) or a persona "
    "with its own taste (text: concise, detailed, formal, casual; MiniGrid: fast, walls; CartPole: centered, "
    "upright).",
)
@click.option("--annotator", default=None, help="Store the labels under this name (default: teacher:TEACHER).")
@click.option("-n", "count", default=100, show_default=True, help="Pending pairs to label.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of the teacher's randomness.")
@click.pass_obj
def label_synthetic(studio: Studio, name: str, teacher_name: str, annotator: str | None, count: int, seed: int) -> None:
    """Label pending pairs with a scripted teacher or persona (simulate a team with --annotator)."""
    from app.services.synthetic import label_synthetic as run

    result = run(studio, name, teacher_name, count, seed=seed, annotator=annotator)
    click.echo(f"{result.annotator} labeled {result.labeled} pairs ({result.equal} equal, {result.skipped} skipped)")


@cli.command()
@click.option("--project", "name", required=True, help="Project name.")
@click.option(
    "--method",
    type=click.Choice(["random", "disagreement"]),
    default="random",
    show_default=True,
    help="random pairs, or those the active reward model's members dispute most.",
)
@click.option("-n", "count", default=50, show_default=True, help="Pairs to add.")
@click.option("--oversample", default=10, show_default=True, help="Candidates per kept pair (disagreement).")
@click.option("--seed", default=None, type=SEED, help="Seed of the candidate sampling.")
@click.option("--workers", default=2, show_default=True, help="Worker processes for rendering clips.")
@click.pass_obj
def queries(
    studio: Studio, name: str, method: str, count: int, oversample: int, seed: int | None, workers: int
) -> None:
    """Add pairs to label (their clips are rendered first)."""
    from app.services.queries import add_queries

    with _reporting() as bars:
        result = add_queries(
            studio, name, method, count, seed=seed, oversample=oversample, workers=workers, on_progress=bars
        )
    extra = f", most disputed score {result.top_score:.3f}" if result.top_score is not None else ""
    click.echo(f"added {result.added} {method} pairs{extra}")


@cli.command("train-reward")
@click.option("--project", "name", required=True, help="Project name.")
@click.option(
    "--kind",
    type=click.Choice(list(REWARD_KINDS)),
    default=None,
    help="; ".join(f"{k.name}: {k.summary}" for k in REWARD_KINDS.values()) + ".",
)
@click.option("--members", type=int, default=None, help="Ensemble members (3-5).")
@click.option("--epochs", type=int, default=None, help="Training epochs (ensemble, text-lora).")
@click.option("--noise-prob", type=float, default=None, help="Ensemble label-noise probability.")
@click.option(
    "--encoder",
    default=None,
    help="Frozen encoder for pixels: efficientnet-lite0 (default), resnet18[:FILE], resnet50[:FILE], source:FILE.",
)
@click.option(
    "--actions",
    is_flag=True,
    help="State-action reward: the model also sees each step's action (one-hot; bt and ensemble).",
)
@click.option(
    "--form",
    type=click.Choice(["potential", "transition"]),
    default=None,
    help="Clip rewards: potential (default for bt and ensemble: r = Phi(s') - Phi(s) + c, which a policy "
    "cannot farm by circling) or transition (any function of the step; cnn-lora's only form).",
)
@click.option("--rank", type=int, default=None, help="LoRA rank (text-lora); taste dimensions (personal).")
@click.option("--alpha", type=float, default=None, help="LoRA alpha; updates scale by alpha / rank (text-lora).")
@click.option("--dropout", type=float, default=None, help="Dropout on the LoRA branch (text-lora).")
@click.option(
    "--target-modules",
    default=None,
    help="Layers that get LoRA adapters, comma-separated, e.g. query,key,value,dense (text-lora; default query,value).",
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    default=None,
    help="Leave out annotators whose agreement with the others' majority is below this (rlhf agreement).",
)
@click.option(
    "--weight-by-agreement",
    is_flag=True,
    help="Weigh each label in the loss by its annotator's agreement with the others' majority (rlhf agreement).",
)
@click.option(
    "--base-model",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A Hugging Face model folder on disk as the backbone (text-lora; default: the packaged MiniLM). "
    "Encoders and causal LMs; a causal LM's reward is read at the last token, through its chat template if any.",
)
@click.option("--lr", type=float, default=None, help="Learning rate (text-lora).")
@click.option("--max-length", type=int, default=None, help="Tokens of prompt + response kept (text-lora).")
@click.option(
    "--fresh",
    is_flag=True,
    help="Start from a fresh network; by default an ensemble continues training the active model "
    "when it has the same inputs and shape.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=SEED,
    help="Seed of the training (and of a text model's held-out split).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.pass_obj
def train_reward(
    studio: Studio,
    name: str,
    kind: str | None,
    members: int | None,
    epochs: int | None,
    noise_prob: float | None,
    encoder: str | None,
    actions: bool,
    form: str | None,
    rank: int | None,
    alpha: float | None,
    dropout: float | None,
    target_modules: str | None,
    min_agreement: float | None,
    weight_by_agreement: bool,
    base_model: Path | None,
    lr: float | None,
    max_length: int | None,
    fresh: bool,
    seed: int,
    as_json: bool,
) -> None:
    """Train a reward model on the project's labels and make it the active version."""
    from app.services.rewards import train_reward_model

    config = {
        k: v
        for k, v in {
            "members": members,
            "noise_prob": noise_prob,
            "rank": rank,
            "alpha": alpha,
            "dropout": dropout,
            "target_modules": _modules(target_modules),
            "backbone": None if base_model is None else str(base_model.resolve()),
            "lr": lr,
            "max_length": max_length,
            "epochs": epochs,
        }.items()
        if v is not None
    }
    with _reporting("training cancelled; the active model is unchanged", TrainingCancelledError) as bars:
        result = train_reward_model(
            studio,
            name,
            kind,
            config=config,
            seed=seed,
            on_progress=bars,
            encoder=encoder,
            actions=actions,
            form=form,
            min_agreement=min_agreement,
            weight_by_agreement=weight_by_agreement,
            continue_active=not fresh,
        )
    if os.environ.get("RANK", "0") != "0":  # a helper process of `accelerate launch`: the main one reports
        return
    if as_json:
        click.echo(json.dumps({"version": result.version, "kind": result.kind, **result.metrics}, indent=2))
        return
    click.echo(reward_kinds.summary(result.version, result.kind, result.metrics))
    for person, acc in (result.metrics.get("per_annotator") or {}).items():
        click.echo(
            f"  {person}: held-out accuracy {_fmt(acc['personal'])} with their own taste, "
            f"{_fmt(acc['pooled'])} pooled ({acc['held_out']} held-out labels)"
        )


@cli.command()
@click.option("--project", "name", required=True, help="Text project whose active reward model scores.")
@click.option("--prompt", required=True, help="The prompt the responses answer.")
@click.option("--response", "responses", multiple=True, required=True, help="A response to score (repeat the option).")
@click.option(
    "--annotator",
    default=None,
    help="Score as this annotator would (a personal model; default: the population's taste).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a ranking.")
@click.pass_obj
def score(
    studio: Studio, name: str, prompt: str, responses: tuple[str, ...], annotator: str | None, as_json: bool
) -> None:
    """Score responses to a prompt with the project's active text reward model, best first."""
    from app.services.personal import score_texts
    from app.services.projects import active_kind
    from app.services.text_rewards import score_responses

    if annotator is not None or active_kind(studio, name) == "personal":
        version, ranked_pairs = score_texts(studio, name, prompt, list(responses), annotator)
    else:
        result = score_responses(studio, name, prompt, list(responses))
        version, ranked_pairs = result.version, result.ranked
    if as_json:
        ranked = [{"rank": i + 1, "score": s, "response": r} for i, (r, s) in enumerate(ranked_pairs)]
        out = {"version": version, "prompt": prompt, "annotator": annotator, "ranked": ranked}
        click.echo(json.dumps(out, indent=2))
        return
    whose = f", as {annotator} would" if annotator else ""
    click.echo(f"reward model version {version}{whose}, best first:")
    for i, (response, value) in enumerate(ranked_pairs, start=1):
        click.echo(f"{i:>3}. {value:+8.3f}  {response}")


@cli.command()
@click.option("--project", "name", required=True, help="Project whose active model is a personal one.")
@click.option("--annotator", required=True, help="The person whose taste to fit from their labels.")
@click.pass_obj
def personalize(studio: Studio, name: str, annotator: str) -> None:
    """Fit one annotator's taste from their labels into the active personal model (the rest stays)."""
    from app.services.personal import personalize as fit

    result = fit(studio, name, annotator)
    click.echo(
        f"version {result.version} (personal) is active: {annotator}'s taste fitted from "
        f"{result.metrics['personalized_labels']} labels; it knows {len(result.metrics['annotators'])} annotators"
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


@cli.command("train-policy")
@click.option("--project", "name", required=True, help="Project name.")
@click.option(
    "--reward",
    default="active",
    show_default=True,
    help="active: the active reward model; true: the environment's reward (baseline); teacher: what the scripted "
    "teacher judges by (MiniGrid: progress toward the goal; a second baseline); or a reward model version.",
)
@click.option("--steps", type=int, default=None, help="Environment steps (default: the environment's preset).")
@click.option(
    "--algo",
    type=click.Choice(["dqn", "sac", "ppo", "td3", "a2c"]),
    default=None,
    help="dqn: the studio's DQN (default for discrete actions); sac (default for continuous actions), ppo, td3, "
    "a2c: stable-baselines3's, on the same learned reward.",
)
@click.option(
    "--encoder",
    default=None,
    help="Frozen encoder for pixels: efficientnet-lite0 (default), resnet18[:FILE], resnet50[:FILE], source:FILE.",
)
@click.option(
    "--seed", default=0, show_default=True, type=SEED, help="Seed of the network, environment and exploration."
)
@click.option(
    "--warm-start",
    default="auto",
    show_default=True,
    help="DQN only (other algorithms start from scratch): start from a policy's network and keep it where "
    "nothing trained since scores higher on this "
    "reward. auto: the newest DQN trained on a reward model (same encoder) when this one trains on a reward model "
    "too, as each round of `rlhf loop` does; previous: that one, whatever the reward; none: from scratch; or a "
    "policy version.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.pass_obj
def train_policy_cmd(
    studio: Studio,
    name: str,
    reward: str,
    steps: int | None,
    algo: str | None,
    encoder: str | None,
    seed: int,
    warm_start: str,
    as_json: bool,
) -> None:
    """Train a policy (DQN, or SAC/PPO from stable-baselines3) on the learned (or true) reward
    and register the checkpoint."""
    from app.services.policies import describe_start, parse_warm_start, train_policy

    if steps is not None and steps < 1:
        raise click.ClickException(f"--steps must be positive, got {steps}")
    start = parse_warm_start(warm_start, reward)  # a bad value: a user error, reported by StudioGroup
    with _reporting("training cancelled; no checkpoint was registered", TrainingCancelledError) as bars:
        result = train_policy(
            studio, name, reward, steps=steps, encoder=encoder, seed=seed, algo=algo, warm_start=start, on_progress=bars
        )
    m = result.metrics
    if as_json:
        click.echo(json.dumps({"version": result.version, **m, "curve": result.curve}, indent=2))
        return
    success = "" if m["success_rate"] is None else f", success_rate {m['success_rate']:.2f}"
    learned = "" if m["learned_return_mean"] is None else f", learned return {m['learned_return_mean']:.2f}"
    click.echo(
        f"policy version {result.version} ({m['algo']}, {m['reward']} reward, {m['labels_used']} labels): "
        f"true return {m['true_return_mean']:.2f}{success}{learned}, "
        f"{m['env_steps']} steps at {m['env_steps_per_second']:.0f} steps/s"
    )
    started = describe_start(m)
    if started is not None:
        click.echo(f"  {started}" + (" (--warm-start none starts from scratch)" if m["warm_start"] else ""))


@cli.command("loop")
@click.option("--project", "name", required=True, help="Trajectory project.")
@click.option(
    "--teacher",
    default="oracle",
    show_default=True,
    help="Scripted teacher that labels between rounds (oracle, stochastic, myopic, mistake, skip, equal); "
    "'none': people label in the app, and each round after the first waits until --labels-per-round new "
    "labels have arrived (--first-labels: the first round too).",
)
@click.option("--rounds", default=2, show_default=True, type=click.IntRange(1), help="Rounds to run.")
@click.option(
    "--labels-per-round",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="Pairs the teacher labels before each round.",
)
@click.option(
    "--first-labels",
    default=None,
    type=click.IntRange(1),
    help="Pairs the teacher labels before the first round (default: --labels-per-round; with --teacher none "
    "the first round waits for this many new labels, and without it starts at once).",
)
@click.option("--steps", type=click.IntRange(1), default=None, help="Policy environment steps (default: the preset).")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of the teacher, models and policies.")
@click.option("--json", "as_json", is_flag=True, help="Print each round as JSON.")
@click.pass_obj
def loop_cmd(
    studio: Studio,
    name: str,
    teacher: str,
    rounds: int,
    labels_per_round: int,
    first_labels: int | None,
    steps: int | None,
    seed: int,
    as_json: bool,
) -> None:
    """Run rounds of the loop: label, retrain the reward model, train a policy, queue its clips.

    Each round is all or nothing: Ctrl-C withdraws the round's reward model and policy."""
    from app.services.loop import RoundResult, run_loop

    def report(r: RoundResult) -> None:
        if as_json:
            click.echo(json.dumps(r.to_json()))
            return
        success = "" if r.success_rate is None else f"success {r.success_rate:.2f}, "
        learned = "" if r.learned_return_mean is None else f", learned return {r.learned_return_mean:.1f}"
        click.echo(
            f"round {r.round}: {r.labels} labels, reward model v{r.reward_version} "
            f"(held-out accuracy {r.describe_accuracy()}), policy v{r.policy_version}: {success}"
            f"true return {r.true_return_mean:.2f}{learned}; {r.new_pairs} new pairs queued ({r.seconds:.0f} s)"
        )
        if r.policy_restart is not None:
            click.echo(f"  policy v{r.policy_version}: {r.policy_start}")

    cancelled = "stopped; an unfinished round was withdrawn (finished rounds are kept)"
    with _reporting(cancelled, TrainingCancelledError) as bars:
        run_loop(
            studio,
            name,
            rounds=rounds,
            labels_per_round=labels_per_round,
            teacher=None if teacher == "none" else teacher,
            first_labels=first_labels,
            seed=seed,
            steps=steps,
            on_progress=bars,
            on_round=report,
        )


@cli.command("autopilot")
@click.option("--project", "name", required=True, help="Trajectory project.")
@click.option(
    "--every",
    type=click.IntRange(1),
    default=None,
    help="Run a round (retrain reward and policy, queue its clips) after this many new labels.",
)
@click.option("--off", is_flag=True, help="Switch the autopilot off.")
@click.pass_obj
def autopilot_cmd(studio: Studio, name: str, every: int | None, off: bool) -> None:
    """Switch a project's autopilot on (--every K) or off (--off); the app runs its rounds."""
    from app.services.autopilot import labels_since_round, set_autopilot

    if off == (every is not None):
        raise click.UsageError("give either --every K or --off")
    set_autopilot(studio, name, None if off else every)
    since, _ = labels_since_round(studio, name)
    state = "off" if off else f"on: a round every {every} labels ({since} since the last round)"
    click.echo(f"autopilot of {name!r} {state}")


@cli.command("policies")
@click.option("--project", "name", required=True, help="Project name.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def policies_cmd(studio: Studio, name: str, as_json: bool) -> None:
    """List a project's policy checkpoints."""
    from app.services.policies import policy_registry

    rows = policy_registry(studio, name)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no policies yet: rlhf train-policy --project " + name)
    for r in rows:
        success = "" if r["success_rate"] is None else f" success {r['success_rate']:.2f}"
        click.echo(
            f"v{r['version']}: {r['reward']} reward, {r['labels_used']} labels, "
            f"true return {r['true_return_mean']:.2f}{success}, {r['env_steps']} steps"
        )


@cli.command("policy-queries")
@click.option("--project", "name", required=True, help="Project name.")
@click.option("--version", type=int, default=None, help="Policy version (default: the newest).")
@click.option("--episodes", default=4, show_default=True, help="Episodes to roll out.")
@click.option("--seed", default=None, type=SEED, help="Seed of the rollouts and pairs.")
@click.pass_obj
def policy_queries(studio: Studio, name: str, version: int | None, episodes: int, seed: int | None) -> None:
    """Turn a policy's fresh rollouts into new pairs to label, served first."""
    from app.services.policies import rollouts_to_queries

    with _reporting() as bars:
        added = rollouts_to_queries(studio, name, version, episodes=episodes, seed=seed, on_progress=bars)
    click.echo(f"added {added.segments} segments from {added.episodes} episodes and {added.queries} queries")


@cli.command("train-encoder")
@click.option("--env", "env_id", default="MiniGrid-Empty-8x8-v0", show_default=True, help="Source environment.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output file (default: encoders/ENV.safetensors in the data folder, where the Train and Policy "
    "pages offer it).",
)
@click.option("--frames", default=4000, show_default=True, help="Frames of the source task.")
@click.option("--epochs", default=6, show_default=True, help="Training epochs.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed.")
@click.pass_obj
def train_encoder(studio: Studio, env_id: str, output: Path | None, frames: int, epochs: int, seed: int) -> None:
    """Train a CNN on a source MiniGrid task, to reuse frozen on another (--encoder source:FILE)."""
    from app.services.encoders import train_encoder as train

    bar = tqdm(desc="source task", unit="step", file=sys.stderr)
    try:

        def on_step(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        output, result = train(studio, env_id, output, frames=frames, epochs=epochs, seed=seed, on_step=on_step)
    finally:
        bar.close()
    click.echo(
        f"saved {output} ({result.features_dim} features): held-out direction accuracy "
        f"{result.direction_accuracy:.3f}, position error {result.position_error_cells:.2f} cells; "
        f"use it with --encoder source:{output}"
    )


@cli.command("import")
@click.option("--project", "name", required=True, help="Text project (created if it does not exist).")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of the order new responses are stored in.")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.pass_obj
def import_(studio: Studio, name: str, seed: int, file: Path) -> None:
    """Import text pairs from FILE into a text project: a .csv, .jsonl or .parquet file, or a
    dataset folder (Dataset.save_to_disk, or Parquet / JSON Lines files as on the Hub).

    \b
    Fields: prompt, response_a, response_b  (pairs to label), or
            prompt, chosen, rejected        (labeled pairs, annotator "import"; TRL's
                                             conversational and implicit-prompt forms too).
    Every row is checked first; a file with a bad row imports nothing.
    """
    import numpy as np

    from app.services.pref_datasets import import_any
    from app.services.text_data import describe_import

    result = import_any(studio, name, file, rng=np.random.default_rng(seed))
    click.echo(describe_import(result))


@cli.command()
@click.option("--project", "name", required=True, help="Text project.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet"]),
    default=None,
    help="File format (default: from the extension of -o: .csv, .parquet, anything else jsonl).",
)
@click.option(
    "-o", "--output", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write."
)
@click.pass_obj
def export(studio: Studio, name: str, fmt: str | None, out: Path) -> None:
    """Export a project's preferences; datasets.load_dataset("parquet", data_files=OUT) loads Parquet.

    \b
    Text projects: TRL rows (prompt, chosen, rejected, annotator), one per left/right label;
    equal and can't-tell answers go to OUT's sibling NAME.ties.EXT. Parquet adds timestamps.
    Clip projects (Parquet only): one row per answer with both segments' observations (or
    their files, for pixels), actions, the choice, the annotator and timestamps.
    """
    from app.services.pref_datasets import export_project

    result = export_project(studio, name, out, fmt)
    if hasattr(result, "ties_path"):
        click.echo(f"wrote {result.rows} preferences to {result.path} and {result.ties} ties to {result.ties_path}")
    else:
        click.echo(f"wrote {result.rows} answers (both segments of each pair) to {result.path}")


@cli.command("export-model")
@click.option("--project", "name", default=None, help="Project whose reward model to export.")
@click.option(
    "--classifier", "classifier_id", type=int, default=None, help="Instead: a registered classifier (rlhf classifiers)."
)
@click.option("--version", type=int, default=None, help="Reward model version (default: the active one).")
@click.option(
    "--form",
    type=click.Choice(["merged", "adapter"]),
    default="merged",
    show_default=True,
    help="Text models: merged = a plain Hugging Face model folder (LoRA merged, tokenizer, config); "
    "adapter = PEFT's adapter and the tokenizer. Trajectory models always export a torch.export program.",
)
@click.option(
    "-o", "--output", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="A new folder."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def export_model(
    studio: Studio,
    name: str | None,
    classifier_id: int | None,
    version: int | None,
    form: str,
    out: Path,
    as_json: bool,
) -> None:
    """Write a reward model as a folder that plain transformers (text) or plain torch (trajectories) load.

    \b
    Text:         AutoModelForSequenceClassification.from_pretrained(OUT) and AutoTokenizer, TRL's reward model.
    Trajectories: torch.export.load(OUT/reward.pt2).module()(obs, action, next_obs).
    The export is reloaded and checked against the studio's scores before it is moved into OUT.
    """
    from app.services.exports import export_model as run

    if (name is None) == (classifier_id is None):
        raise click.UsageError("give --project P (a reward model) or --classifier ID, one of the two")
    if classifier_id is not None:
        from app.services.classifiers import export_classifier

        done = export_classifier(studio, classifier_id, out)
        if as_json:
            click.echo(json.dumps(done, indent=2))
        else:
            click.echo(
                f"wrote classifier #{classifier_id} ({done['kind']}, {done['form']}) to {out}: "
                + ", ".join(done["files"])
            )
        return
    result = run(studio, name, out, version=version, form=form)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(
        f"wrote {result.kind} reward model v{result.version} of {name!r} ({result.form}) to {result.path}: "
        f"{', '.join(result.files)}; reloaded, largest score difference {result.max_abs_diff:.1e}"
    )


@cli.command("export-policy")
@click.option("--project", "name", required=True, help="Trajectory project.")
@click.option("--version", type=int, default=None, help="Policy checkpoint (default: the newest).")
@click.option(
    "-o", "--output", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="A new folder."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def export_policy(studio: Studio, name: str, version: int | None, out: Path, as_json: bool) -> None:
    """Write a policy as a torch.export program: torch.export.load(OUT/policy.pt2).module()(obs) -> actions.

    The checkpoint's own files (the DQN's safetensors, or SB3's model.zip) are copied beside it.
    """
    from app.services.exports import export_policy as run

    result = run(studio, name, out, version=version)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(
        f"wrote {result.algo} policy v{result.version} of {name!r} to {result.path}: {', '.join(result.files)}; "
        f"reloaded, largest action difference {result.max_abs_diff:.1e}"
    )


@cli.command()
@click.option("--drain", is_flag=True, help="Exit when the queue is empty (else wait for new jobs).")
@click.option(
    "--poll",
    "poll_s",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between looks at an empty queue.",
)
@click.option(
    "--max-jobs", "max_jobs_run", type=click.IntRange(1), default=None, help="Exit after running this many jobs."
)
@click.pass_obj
def worker(studio: Studio, drain: bool, poll_s: float, max_jobs_run: int | None) -> None:
    """Run queued jobs (training, loop rounds, classifiers) from the store, one at a time.

    Start any number, on any machine that shares the database (RLHF_DATABASE_URL, e.g.
    PostgreSQL) and the data folder (RLHF_DATA_DIR): each claims the oldest queued job, and two
    never take the same one. Run the app with RLHF_WORKERS=external to leave the queue to them.
    Ctrl-C (or SIGTERM) finishes the running job, then exits; a second Ctrl-C stops it at once.
    """
    import signal
    import threading

    from app.services.jobs import work

    logging.getLogger().setLevel(logging.INFO)  # each job's log (jobs/ID.log) gets the library's progress lines
    stop = threading.Event()

    def ask_to_stop(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo("stopping after the running job (Ctrl-C again to stop it now)", err=True)

    signal.signal(signal.SIGINT, ask_to_stop)
    signal.signal(signal.SIGTERM, ask_to_stop)

    def on_job(job_id: int, kind: str, status: object) -> None:
        if status is None:
            click.echo(f"job #{job_id} ({kind}) started")
        else:
            click.echo(f"job #{job_id} ({kind}) {getattr(status, 'value', status)}")

    click.echo(
        f"worker on {studio.settings.data_dir}: waiting for jobs" + (" (until the queue is empty)" if drain else "")
    )
    try:
        report = work(studio, drain=drain, poll_s=poll_s, max_jobs_run=max_jobs_run, stop=stop, on_job=on_job)
    except KeyboardInterrupt:
        raise click.ClickException("stopped; the running job was marked failed (submit it again)") from None
    click.echo(f"worker {report.worker_id} stopped after {len(report.jobs)} jobs")


@cli.command("demo-text")
@click.option("--project", "name", default=None, help="Project name (default: text-demo, or team-demo with --team).")
@click.option(
    "--team",
    is_flag=True,
    help="Instead: 600 pairs of reviews in two registers and four lengths, for a team whose tastes conflict "
    "(simulate one with the personas of label-synthetic).",
)
@click.pass_obj
def demo_text(studio: Studio, name: str | None, team: bool) -> None:
    """Create a text project from the shipped demo pairs (a second run adds nothing)."""
    from app.services.text_data import create_team_demo, create_text_demo, describe_import

    if team:
        click.echo(describe_import(create_team_demo(studio, name or "team-demo")))
        return
    results = create_text_demo(studio, name or "text-demo")
    for result in results:
        click.echo(describe_import(result))


@cli.command("train-classifier")
@click.option(
    "--data",
    "path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="A text,label CSV (--kind text) or a folder with one sub-folder of images per class (--kind image); "
    "default: the packaged sentiment reviews, or the generated shapes.",
)
@click.option("--kind", type=click.Choice(["text", "image"]), default="text", show_default=True, help="Data kind.")
@click.option(
    "--mode",
    type=click.Choice(["frozen", "lora", "full"]),
    default="frozen",
    show_default=True,
    help="frozen: features + new linear head; lora: PEFT adapters + head; full: every weight trains.",
)
@click.option("--epochs", default=5, show_default=True, help="Training epochs.")
@click.option("--rank", type=int, default=None, help="LoRA rank (--mode lora; default 8).")
@click.option("--alpha", type=float, default=None, help="LoRA alpha; updates scale by alpha / rank (default 16).")
@click.option("--dropout", type=float, default=None, help="Dropout on the LoRA branch (default 0).")
@click.option(
    "--target-modules",
    default=None,
    help="Layers that get LoRA adapters, comma-separated (default: query,value for text; EfficientNet's "
    "pointwise convolutions for images).",
)
@click.option(
    "--base-model",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A Hugging Face model folder on disk as the text backbone (default: the packaged MiniLM).",
)
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of the split and the training.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def train_classifier(
    studio: Studio,
    path: Path | None,
    kind: str,
    mode: str,
    epochs: int,
    rank: int | None,
    alpha: float | None,
    dropout: float | None,
    target_modules: str | None,
    base_model: Path | None,
    seed: int,
    as_json: bool,
) -> None:
    """Adapt a pretrained backbone (MiniLM for text, EfficientNet-Lite0 for images) to a labeled dataset,
    and keep it in the registry (rlhf classifiers, rlhf predict)."""
    from app.services.classifiers import train_classifier as run

    lora = {"rank": rank, "alpha": alpha, "dropout": dropout, "target_modules": _modules(target_modules)}

    with _reporting() as bars:  # the bar appears with the first step, after the data loaded

        def on_step(done: int, total: int, metrics: dict[str, float]) -> None:
            bars("train", done, total)

        result = run(
            studio, kind, mode, path=path, epochs=epochs, seed=seed, lora=lora, base_model=base_model, on_step=on_step
        )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(
        f"classifier #{result.id} ({kind}, mode {mode}): held-out accuracy {result.accuracy:.3f} "
        f"on {result.n_val} examples "
        f"({result.n_train} trained on); trainable {result.trainable_params:,} of {result.total_params:,} "
        f"parameters ({result.trainable_fraction:.2%}); {result.train_seconds:.1f} s"
    )
    width = max(len(n) for n in result.class_names) + 2
    click.echo("confusion matrix (rows: true class, columns: predicted):")
    click.echo(" " * width + "".join(f"{n:>{width}}" for n in result.class_names))
    for name, row in zip(result.class_names, result.confusion, strict=True):
        click.echo(f"{name:<{width}}" + "".join(f"{v:>{width}}" for v in row))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def classifiers(studio: Studio, as_json: bool) -> None:
    """The trained classifiers in the registry, newest first."""
    from app.services.classifiers import list_classifiers

    rows = list_classifiers(studio)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no classifiers yet: train one with rlhf train-classifier")
        return
    for r in rows:
        accuracy = "n/a" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        click.echo(
            f"#{r['id']:<4} {r['kind']:<6} {r['mode']:<7} accuracy {accuracy}  classes {', '.join(r['classes'])}  "
            f"({r['dataset']})"
        )


@cli.command()
@click.option("--classifier", "classifier_id", type=int, required=True, help="Classifier id (rlhf classifiers).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("inputs", nargs=-1, required=True)
@click.pass_obj
def predict(studio: Studio, classifier_id: int, as_json: bool, inputs: tuple[str, ...]) -> None:
    """Classify INPUTS with a registered classifier: texts (a text classifier) or image files (an image one)."""
    from app.services.classifiers import predict as run

    results = run(studio, classifier_id, list(inputs))
    if as_json:
        rows = [{"input": p.input, "label": p.label, "probabilities": p.probabilities} for p in results]
        click.echo(json.dumps(rows, indent=2))
        return
    for p in results:
        click.echo(f"{p.label:<12} {p.probabilities[p.label]:.3f}  {p.input}")


@cli.command("make-demo-images")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--per-class", default=30, show_default=True, help="Images of each shape.")
@click.option("--size", default=64, show_default=True, help="Width and height in pixels.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of colours, sizes and places.")
def make_demo_images(folder: Path, per_class: int, size: int, seed: int) -> None:
    """Draw a small image dataset (circle, square, triangle, cross; one sub-folder each) into FOLDER."""
    from app.services.classifiers import make_demo_images as draw

    counts = draw(folder, per_class=per_class, size=size, seed=seed)
    click.echo(f"wrote {sum(counts.values())} images of {len(counts)} classes ({', '.join(counts)}) to {folder}")
    click.echo(f"train on them: rlhf train-classifier --kind image --data {folder} --mode lora")


@cli.command("agreement")
@click.option("--project", "name", required=True, help="Project name.")
@click.option("--disputed", default=10, show_default=True, help="Most disputed pairs to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_obj
def agreement_cmd(studio: Studio, name: str, disputed: int, as_json: bool) -> None:
    """How much a project's annotators agree: Krippendorff's alpha, Cohen's kappa, per person."""
    from app.services.agreement import agreement

    report = agreement(studio, name, disputed=disputed)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return

    def pct(value: float | None, n: int) -> str:
        return "-" if value is None else f"{value:.2f} ({n})"

    alpha = "n/a" if report.alpha is None else f"{report.alpha:.3f}"
    click.echo(
        f"{report.project}: Krippendorff's alpha (nominal) {alpha} over {report.pairs_with_several} pairs "
        f"answered by 2+ people; {report.labels_per_pair} label(s) per pair"
    )
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.annotators:
        model = f"model v{report.model_version}" if report.model_version else "model"
        header = ("annotator", "labels", "majority", "gold", model, "ties", "can't tell", "median s")
        rows = [
            (
                a.annotator,
                str(a.labels),
                pct(a.with_majority, a.majority_pairs),
                pct(a.with_gold, a.gold_pairs),
                pct(a.with_model, a.model_pairs),
                f"{a.tie_rate:.2f}",
                f"{a.cant_tell_rate:.2f}",
                "-" if a.median_seconds is None else f"{a.median_seconds:.1f}",
            )
            for a in report.annotators
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for r in [header, *rows]:
            click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    if report.kappas:
        click.echo("Cohen's kappa (pairs answered by both):")
        for k in report.kappas:
            click.echo(f"  {k.a} ~ {k.b}: {'n/a' if k.kappa is None else f'{k.kappa:.2f}'} ({k.shared})")
    if report.disputed:
        click.echo("most disputed pairs (rule on one: rlhf adjudicate --project P --pair ID --answer a|b|equal):")
        for d in report.disputed:
            answers = ", ".join(f"{n}: {v}" for n, v in d.answers.items())
            ruling = f"; ruled {d.ruling}" if d.ruling else ""
            click.echo(f"  pair {d.query_id}: {answers}{ruling}")


@cli.command("adjudicate")
@click.option("--project", "name", required=True, help="Project name.")
@click.option("--pair", "query_id", type=int, required=True, help="Pair id (from `rlhf agreement`).")
@click.option(
    "--answer",
    type=click.Choice(["a", "b", "equal", "none"]),
    required=True,
    help="The ruling: item A, item B, equal; none withdraws it.",
)
@click.pass_obj
def adjudicate_cmd(studio: Studio, name: str, query_id: int, answer: str) -> None:
    """Rule on a disputed pair: training uses the ruling instead of the pair's labels."""
    from app.services.agreement import adjudicate

    adjudicate(studio, name, query_id, None if answer == "none" else answer)
    click.echo(f"pair {query_id}: " + ("ruling withdrawn" if answer == "none" else f"ruled {answer}"))


@cli.command("gold")
@click.option("--project", "name", required=True, help="Project name.")
@click.option("--pair", "query_ids", type=int, multiple=True, required=True, help="Pair id (repeat the option).")
@click.option(
    "--answer",
    type=click.Choice(["a", "b", "equal", "none"]),
    required=True,
    help="The known answer of these pairs (item A, item B, equal); none makes them ordinary again.",
)
@click.pass_obj
def gold_cmd(studio: Studio, name: str, query_ids: tuple[int, ...], answer: str) -> None:
    """Mark pairs as gold: served to everyone at the project's gold rate, they score each annotator."""
    from app.services.agreement import set_gold

    total = set_gold(studio, name, {q: None if answer == "none" else answer for q in query_ids})
    click.echo(f"{len(query_ids)} pair(s) set; {name} has {total} gold pairs (serve them: rlhf project set {name} "
               "--gold-rate R)")  # fmt: skip


@cli.group()
def users() -> None:
    """Accounts: who may log in to the app, with which role, on which projects.

    \b
    Roles: admin (everything), annotator (labels their projects), viewer (sees their projects).
    With no account the app needs no login and serves 127.0.0.1 only; the first account
    turns logins on for everyone.
    """


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default="annotator",
    show_default=True,
    help="What they may do.",
)
@click.option("--project", "projects", multiple=True, help="A project they work on (repeat the option).")
@click.pass_obj
def users_add(studio: Studio, name: str, role: str, projects: tuple[str, ...]) -> None:
    """Add an account NAME; prints its one-time password (to be changed at first login)."""
    from app.services.accounts import add_user

    new = add_user(studio, name, role, projects)
    where = ", ".join(new.projects) if new.projects else ("every project" if role == "admin" else "no project yet")
    click.echo(f"added {new.name} ({new.role}; {where})")
    click.echo(f"one-time password: {new.password}")
    click.echo("they log in with it on the app's login page and choose their own password")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def users_list(studio: Studio, as_json: bool) -> None:
    """List the accounts."""
    from app.services.accounts import list_users

    rows = list_users(studio)
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], indent=2, default=str))
        return
    if not rows:
        click.echo("no accounts: the app needs no login and serves 127.0.0.1 only (add one: rlhf users add NAME)")
    for r in rows:
        seen = r.last_seen_at.strftime("%Y-%m-%d %H:%M UTC") if r.last_seen_at else "never logged in"
        projects = ", ".join(r.projects) or ("all" if r.role == "admin" else "none")
        pending = " (one-time password not yet changed)" if r.must_change_password else ""
        click.echo(f"{r.name}: {r.role}; projects: {projects}; {r.labels} labels; {seen}{pending}")


@users.command("remove")
@click.argument("name")
@click.pass_obj
def users_remove(studio: Studio, name: str) -> None:
    """Remove the account NAME: it cannot log in any more; its labels stay."""
    from app.services.accounts import remove_user

    remove_user(studio, name)
    click.echo(f"removed {name}; their labels stay")


@users.command("password")
@click.argument("name")
@click.pass_obj
def users_password(studio: Studio, name: str) -> None:
    """Give NAME a new one-time password (their sessions end)."""
    from app.services.accounts import reset_password

    new = reset_password(studio, name)
    click.echo(f"one-time password for {new.name}: {new.password}")


@users.command("join")
@click.argument("name")
@click.option("--project", "projects", multiple=True, required=True, help="A project to join (repeat the option).")
@click.pass_obj
def users_join(studio: Studio, name: str, projects: tuple[str, ...]) -> None:
    """Make NAME a member of more projects."""
    from app.services.accounts import add_to_projects

    click.echo(f"{name} works on: {', '.join(add_to_projects(studio, name, projects))}")


@users.command("leave")
@click.argument("name")
@click.option("--project", "projects", multiple=True, required=True, help="A project to leave (repeat the option).")
@click.pass_obj
def users_leave(studio: Studio, name: str, projects: tuple[str, ...]) -> None:
    """End NAME's membership of projects (their labels there stay)."""
    from app.services.accounts import leave_projects

    left = leave_projects(studio, name, projects)
    click.echo(f"{name} works on: {', '.join(left) if left else 'no project'}")


@users.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice([r.value for r in Role]))
@click.pass_obj
def users_role(studio: Studio, name: str, role: str) -> None:
    """Give NAME another ROLE (admin, annotator or viewer); it applies to their next page."""
    from app.services.accounts import set_role

    before = set_role(studio, name, role)
    click.echo(f"{name}: {role}" + (f" (was {before})" if before != role else " (unchanged)"))


@cli.group()
def project() -> None:
    """A project's labeling settings."""


@project.command("set")
@click.argument("name")
@click.option("--labels-per-pair", type=click.IntRange(1), default=None, help="Distinct annotators per pair.")
@click.option("--gold-rate", type=click.FloatRange(0, 0.5), default=None, help="Share of served pairs that are gold.")
@click.pass_obj
def project_set(studio: Studio, name: str, labels_per_pair: int | None, gold_rate: float | None) -> None:
    """Change how project NAME is labeled (prints its settings)."""
    from app.services.projects import update_settings

    settings = update_settings(studio, name, labels_per_pair=labels_per_pair, gold_rate=gold_rate)
    click.echo(
        f"{settings['project']}: {settings['labels_per_pair']} label(s) per pair, gold rate {settings['gold_rate']:.2f}"
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.pass_context
def app(ctx: click.Context, host: str, port: int) -> None:
    """Start the labeling app (Streamlit) on http://HOST:PORT.

    The browser is shown no traceback (nor server paths in it): an unexpected error says
    only that one happened, and its details go to this terminal; with --debug the page
    shows them too.
    """
    studio: Studio = ctx.obj
    debug = bool(ctx.parent and ctx.parent.params.get("debug"))
    studio.engine  # noqa: B018  (migrate before the first page loads, and fail here if we cannot)
    from app.services.accounts import SERVED_HOST_ENV, accounts_enabled, is_loopback

    if not is_loopback(host) and not accounts_enabled(studio):
        raise click.ClickException(
            f"refusing to serve {host}: other machines could label and train without logging in. "
            "Add accounts first (rlhf users add NAME --role admin), or serve --host 127.0.0.1"
        )
    try:  # a port in use or an address not of this machine: say so here, not in Streamlit's traceback
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port or --host"
        ) from exc
    main = Path(__file__).parent / "ui" / "main.py"
    env = {**os.environ, **studio.settings.as_env(), SERVED_HOST_ENV: host}
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(main),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--theme.base", "light",
        "--client.toolbarMode", "minimal",
        "--client.showErrorDetails", "full" if debug else "none",
    ]  # fmt: skip
    click.echo(f"rlhf-studio on http://{host}:{port}  (data: {studio.settings.data_dir})")
    with subprocess.Popen(cmd, env=env) as server:
        # Stopping `rlhf app` (SIGTERM) stops the server too, instead of leaving it running.
        signal.signal(signal.SIGTERM, lambda *_: server.terminate())
        try:
            code = server.wait()
        except BaseException:  # Ctrl-C and the like, as subprocess.call does
            server.kill()
            raise
    raise SystemExit(code)


def main() -> None:
    """Console entry point."""
    cli(prog_name="rlhf")


if __name__ == "__main__":
    main()
