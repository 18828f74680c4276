"""The ``rlhf`` command line: every action of the app, for scripts, CI and bigger machines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import click
from tqdm import tqdm

from app.config import Settings, Studio
from rlhf_core.envs import DEFAULT_ENV_ID, EnvError


class _Bars:
    """One tqdm bar per stage of a long operation, fed by a use case's progress callback."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit="", leave=True, file=sys.stderr)
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


@click.group()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data folder (overrides RLHF_DATA_DIR; default ./data).",
)
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None) -> None:
    """rlhf-studio: teach models from human preferences."""
    ctx.obj = Studio(Settings.from_env(data_dir))


@cli.command()
@click.option("--project", "name", default="demo", show_default=True, help="Project name.")
@click.option("--env", "env_id", default=DEFAULT_ENV_ID, show_default=True, help="Gymnasium environment id.")
@click.option("--segments", default=200, show_default=True, help="Number of clips (segments) to cut.")
@click.option("--queries", default=300, show_default=True, help="Number of pairs to compare.")
@click.option("--seed", default=0, show_default=True, help="Seed of rollouts, segments and pairs.")
@click.option("--workers", default=2, show_default=True, help="Worker processes for rollouts and clips.")
@click.pass_obj
def demo(studio: Studio, name: str, env_id: str, segments: int, queries: int, seed: int, workers: int) -> None:
    """Create a demo project with clips ready to label (does nothing if it exists)."""
    from app.services.demo import create_demo_project

    bars = _Bars()
    try:
        result = create_demo_project(
            studio, name, env_id, n_segments=segments, n_queries=queries, seed=seed, workers=workers, on_progress=bars
        )
    except (EnvError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        bars.close()
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
        click.echo(
            f"{r['name']:<20} {r['kind']:<11} {r['env_id'] or '-':<32} {r['items']:>6} {r['queries']:>8} {r['labels']:>7}"
        )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8501, show_default=True, help="Port to listen on.")
@click.pass_obj
def app(studio: Studio, host: str, port: int) -> None:
    """Start the labeling app (Streamlit) on http://HOST:PORT."""
    studio.engine  # noqa: B018  (migrate before the first page loads, and fail here if we cannot)
    main = Path(__file__).parent / "ui" / "main.py"
    env = {**os.environ, **studio.settings.as_env()}
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(main),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--theme.base", "light",
        "--client.toolbarMode", "minimal",
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
