"""The ``kpiloop`` command line. Start-up errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from kpiloop import __version__
from kpiloop.collector.jsonl_replay import LineProblem, expand_paths
from kpiloop.config import load_config, resolve_data_dir
from kpiloop.errors import ConfigError
from kpiloop.exporters.console import SKIPPED, Row
from kpiloop.feedback.active import disable, enable, is_enabled, load_active, suggestions_of
from kpiloop.feedback.baseline_view import render_baseline
from kpiloop.feedback.baselines import BaselineStore
from kpiloop.feedback.pages import acknowledge, load_pages
from kpiloop.identity import sanitize_agent_type, sanitize_session_id
from kpiloop.install import InstallOptions, Scope, install, settings_path, uninstall
from kpiloop.pipeline import Endpoints, build_replay_pipeline, build_server
from kpiloop.types import SystemClock

MAX_PROBLEMS_SHOWN = 20
EXIT_USAGE = 2


def run(argv: Sequence[str]) -> int:
    """Run the click group and turn kpiloop's start-up errors into exit codes."""
    logging.basicConfig(level=logging.WARNING, format="kpiloop: %(levelname)s: %(message)s")
    try:
        main.main(args=list(argv), prog_name="kpiloop", standalone_mode=False)
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Abort:
        return 1
    except (ConfigError, FileNotFoundError) as error:
        click.echo(f"kpiloop: {error}", err=True)
        return EXIT_USAGE
    return 0


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kpiloop")
def main() -> None:
    """Measure AI coding-agent sessions from their telemetry and close the improvement loop."""


config_option = click.option(
    "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), help="otel-config.yaml to use."
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Data directory (default: $KPILOOP_HOME, else ~/.claude/telemetry).",
)


@main.command()
@click.argument("paths", nargs=-1)
@config_option
@data_dir_option
@click.option("--agent-type", help="Agent type for sessions whose telemetry names none.")
@click.option("--force", is_flag=True, help="Re-record sessions already in history (the new line supersedes).")
def replay(
    paths: tuple[str, ...], config_path: Path | None, data_dir: Path | None, agent_type: str | None, force: bool
) -> None:
    """Replay JSONL telemetry files (globs allowed, - for stdin) and record each session's KPIs.

    Reads the plan's traces-/evaluations-/logs-*.jsonl and OTLP/JSON lines. All PATHS are one
    input: sessions still open at the end of it close then, in the order of their last event.
    """
    config = load_config(config_path)
    files = expand_paths(paths or config.receivers.jsonl.paths)
    if not files:
        raise click.UsageError("no input: give PATHS or set receivers.jsonl.paths")
    target = resolve_data_dir(data_dir, config, os.environ)
    reporter = ProblemReporter()
    progress = Progress(files) if sys.stderr.isatty() else None
    pipeline = build_replay_pipeline(
        config,
        files,
        target,
        SystemClock(),
        reporter,
        force=force,
        agent_type=sanitize_agent_type(agent_type) if agent_type else None,
        on_progress=progress,
    )
    pipeline.run()
    if progress is not None:
        progress.finish()
    reporter.finish()
    click.echo(pipeline.table.render())
    click.echo(_footer(pipeline.table.rows, pipeline.processor.stats.empty_sessions, pipeline.history.path))


PENDING_POLL_SECONDS = 5.0


@main.command()
@config_option
@data_dir_option
@click.option("--otlp-grpc", metavar="HOST:PORT", help="OTLP/gRPC listen address (default 127.0.0.1:4317).")
@click.option("--otlp-http", metavar="HOST:PORT", help="OTLP/HTTP listen address (default 127.0.0.1:4318).")
@click.option("--prometheus", metavar="HOST:PORT", help="/metrics listen address (default 127.0.0.1:9464).")
def serve(
    config_path: Path | None,
    data_dir: Path | None,
    otlp_grpc: str | None,
    otlp_http: str | None,
    prometheus: str | None,
) -> None:
    """Receive OTLP (gRPC and HTTP), measure sessions live, serve /metrics; SIGTERM stops cleanly.

    On SIGTERM or SIGINT kpiloop stops accepting, processes everything it accepted, saves the
    sessions still open in the data directory and exits 0; the next start continues them.
    """
    config = load_config(config_path)
    target = resolve_data_dir(data_dir, config, os.environ)
    server = build_server(config, target, SystemClock(), Endpoints(otlp_grpc, otlp_http, prometheus))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    click.echo(
        f"kpiloop serving: otlp-grpc={server.grpc.settings.host}:{server.grpc.port} "
        f"otlp-http={server.http.settings.host}:{server.http.port} "
        f"prometheus={server.prometheus.host}:{server.prometheus.port} data-dir={target} "
        f"restored-sessions={server.restored_sessions}"
    )
    sys.stdout.flush()
    while not stop.wait(PENDING_POLL_SECONDS):
        server.take_pending()
    state_file = server.shutdown()
    if state_file is None:
        raise click.ClickException(
            f"stopped, but {server.processor.open_sessions()} open session(s) could not be saved"
        )
    click.echo(f"kpiloop stopped: {server.processor.open_sessions()} open session(s) saved to {state_file}")


@main.command()
@click.argument("session_id")
@config_option
@data_dir_option
def report(session_id: str, config_path: Path | None, data_dir: Path | None) -> None:
    """Print the performance report written when SESSION_ID closed."""
    target = resolve_data_dir(data_dir, load_config(config_path), os.environ)
    safe = sanitize_session_id(session_id)
    path = target / "reports" / f"{safe}.md"
    if safe is None or not path.is_file():
        raise click.ClickException(f"no report for session {session_id!r} in {target / 'reports'}")
    click.echo(path.read_text(encoding="utf-8"), nl=False)


@main.command("weekly")
@click.option("--week", metavar="YYYY-Www", help="ISO week, e.g. 2026-W47 (default: the current one, UTC).")
@config_option
@data_dir_option
def weekly_command(week: str | None, config_path: Path | None, data_dir: Path | None) -> None:
    """Write the weekly summary of the sessions that ended in an ISO week and print it.

    The file is {data_dir}/reports/weekly-{monday}.md: sessions and tokens per agent type, cache hit
    rate, cost with and without caching, top performers, regressions, optimizations, recommendations.
    """
    from kpiloop.feedback.trend import parse_week, week_of
    from kpiloop.feedback.weekly_render import weekly_report

    config = load_config(config_path)
    target = resolve_data_dir(data_dir, config, os.environ)
    try:
        chosen = parse_week(week) if week else week_of(SystemClock().now())
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--week") from None
    text, path = weekly_report(target, chosen, config.exporters.feedback, config.processors.session_kpi.prices)
    click.echo(text, nl=False)
    click.echo(f"kpiloop: wrote {path}", err=True)


@main.command("trend")
@click.argument("agent_type")
@click.argument("kpi")
@click.option("--last", type=click.IntRange(min=1), default=30, show_default=True, help="Sessions to chart.")
@config_option
@data_dir_option
def trend_command(agent_type: str, kpi: str, last: int, config_path: Path | None, data_dir: Path | None) -> None:
    """Print an ASCII chart of KPI over AGENT_TYPE's last sessions, with its baseline as a dashed line."""
    from kpiloop.feedback.trend import HISTORY_FILE, read_history, render_trend, select_trend, sessions_of

    target = _data_dir_of(config_path, data_dir)
    name = str(sanitize_agent_type(agent_type))
    sessions, _ = sessions_of(read_history(target / HISTORY_FILE)[0])
    try:
        chosen = select_trend(sessions, name, kpi, last, BaselineStore(target).load(name))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="KPI") from None
    except LookupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(render_trend(chosen), nl=False)


@main.group()
def baselines() -> None:
    """Show or reset the per-agent-type baselines sessions are compared with."""


@baselines.command("show")
@click.argument("agent_type", required=False)
@config_option
@data_dir_option
def baselines_show(agent_type: str | None, config_path: Path | None, data_dir: Path | None) -> None:
    """Print AGENT_TYPE's baseline (every agent type's when none is given)."""
    store = BaselineStore(resolve_data_dir(data_dir, load_config(config_path), os.environ))
    agents = [str(sanitize_agent_type(agent_type))] if agent_type else store.agent_types()
    if not agents:
        click.echo("no baselines yet: they are written when sessions close")
    for name in agents:
        baseline = store.load(name)
        if baseline is None:
            raise click.ClickException(f"no baseline for agent type {name!r}")
        click.echo(render_baseline(baseline))


@baselines.command("reset")
@click.argument("agent_type")
@click.option("--kpi", help="Reset only this KPI (its robust baseline and CUSUM state).")
@config_option
@data_dir_option
def baselines_reset(agent_type: str, kpi: str | None, config_path: Path | None, data_dir: Path | None) -> None:
    """Forget AGENT_TYPE's baseline file (or one KPI of it); it is rebuilt at the next close."""
    store = BaselineStore(resolve_data_dir(data_dir, load_config(config_path), os.environ))
    name = str(sanitize_agent_type(agent_type))
    if not store.reset(name, kpi):
        raise click.ClickException(f"nothing to reset for agent type {name!r}" + (f", kpi {kpi!r}" if kpi else ""))
    click.echo(f"reset the baseline of {name}" + (f" for {kpi}" if kpi else ""))


@main.command("reconcile")
@click.argument("session_id", required=False)
@config_option
@data_dir_option
@click.option(
    "--transcripts",
    "pattern",
    metavar="GLOB",
    help="Claude Code transcripts (default ~/.claude/projects/*/*.jsonl); subagent transcripts beside them too.",
)
def reconcile_command(
    session_id: str | None, config_path: Path | None, data_dir: Path | None, pattern: str | None
) -> None:
    """Compare what live telemetry recorded for SESSION_ID with its Claude Code transcript.

    Prints tokens by type, API requests, tool calls and failures on both sides and the gaps
    (transcript - telemetry, absolute and %). Without SESSION_ID: every session in history that has
    a transcript. A gap means telemetry silently lost part of the session.
    """
    from kpiloop.reconcile import DEFAULT_TRANSCRIPTS, reconcile, render

    config = load_config(config_path)
    target = resolve_data_dir(data_dir, config, os.environ)
    pattern = pattern or DEFAULT_TRANSCRIPTS
    try:
        results = reconcile(target, session_id, pattern, config.processors.session_kpi, SystemClock())
    except LookupError as error:
        raise click.ClickException(str(error)) from error
    if not results:
        click.echo(f"no session in {target} has a transcript matching {pattern}")
    for result in results:
        click.echo(render(result) + "\n")
    if len(results) > 1:
        gaps = sum(1 for result in results if not result.complete)
        click.echo(f"{len(results)} session(s) compared, {gaps} with a gap")


@main.command("install")
@click.argument("target", type=click.Choice(["claude-code"]))
@click.option("--scope", type=click.Choice(["user", "project", "local"]), default="user", show_default=True)
@click.option("--agent-type", help="Sets agent.type in OTEL_RESOURCE_ATTRIBUTES (baselines are per agent type).")
@click.option("--endpoint", default="http://127.0.0.1:4317", show_default=True, help="kpiloop's OTLP endpoint.")
@click.option("--protocol", type=click.Choice(["grpc", "http/protobuf", "http/json"]), default="grpc")
@click.option(
    "--hook-endpoint",
    metavar="URL",
    help="kpiloop's OTLP/HTTP endpoint for the hooks (KPILOOP_ENDPOINT); default: --endpoint with an http "
    "protocol, else the hooks' default http://127.0.0.1:4318.",
)
@click.option("--tool-events", is_flag=True, help="Also forward PostToolUse/PostToolUseFailure hooks.")
@click.option("--dry-run", is_flag=True, help="Show the change to settings.json, write nothing.")
@data_dir_option
def install_command(
    target: str,
    scope: Scope,
    agent_type: str | None,
    endpoint: str,
    protocol: str,
    hook_endpoint: str | None,
    tool_events: bool,
    dry_run: bool,
    data_dir: Path | None,
) -> None:
    """Add kpiloop's hooks and telemetry settings to Claude Code's settings.json (nothing clobbered).

    Claude Code reads its telemetry switches only from the user's settings, so a project or local
    install also adds those to ~/.claude/settings.json (and uninstall takes them out again).
    """
    path = settings_path(scope, Path.home(), Path.cwd())
    if hook_endpoint is None and protocol.startswith("http"):
        hook_endpoint = endpoint
    options = InstallOptions(
        scope=scope,
        command=_kpiloop_command(),
        agent_type=str(sanitize_agent_type(agent_type)) if agent_type else None,
        endpoint=endpoint,
        protocol=protocol,
        tool_events=tool_events,
        hook_endpoint=hook_endpoint,
    )
    target_dir = resolve_data_dir(data_dir, load_config(None), os.environ)
    try:
        shown, warnings = install(path, options, target_dir, dry_run, settings_path("user", Path.home(), Path.cwd()))
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(shown or f"{path} already has kpiloop's settings", nl=not shown)
    for warning in warnings:
        click.echo(f"note: {warning}", err=True)
    if not dry_run and shown:
        click.echo(f"updated {path}; undo with: kpiloop uninstall claude-code --scope {scope}")


@main.command("uninstall")
@click.argument("target", type=click.Choice(["claude-code"]))
@click.option("--scope", type=click.Choice(["user", "project", "local"]), default="user", show_default=True)
@click.option("--dry-run", is_flag=True, help="Show the change, write nothing.")
@data_dir_option
def uninstall_command(target: str, scope: Scope, dry_run: bool, data_dir: Path | None) -> None:
    """Remove exactly what `kpiloop install claude-code` added."""
    target_dir = resolve_data_dir(data_dir, load_config(None), os.environ)
    try:
        changes = uninstall(scope, target_dir, dry_run)
    except FileNotFoundError:
        raise click.ClickException(f"no kpiloop install recorded for scope {scope!r} in {target_dir}") from None
    for path, shown in changes:
        click.echo(shown or f"{path}: nothing to change", nl=not shown)


@main.group()
def suggestions() -> None:
    """List, show, disable or enable the active improvement suggestions."""


def _data_dir_of(config_path: Path | None, data_dir: Path | None) -> Path:
    return resolve_data_dir(data_dir, load_config(config_path), os.environ)


@suggestions.command("list")
@click.option("--agent-type", help="Only this agent type's suggestions.")
@config_option
@data_dir_option
def suggestions_list(agent_type: str | None, config_path: Path | None, data_dir: Path | None) -> None:
    """One line per active suggestion: id, agent type, state, sessions tracked, estimate, title."""
    document = load_active(_data_dir_of(config_path, data_dir))
    entries = suggestions_of(document, str(sanitize_agent_type(agent_type)) if agent_type else None)
    if not entries:
        click.echo("no active suggestions: they are activated when sessions close with suggestions")
    for entry in entries:
        tracking = entry.get("tracking") or {}
        state = tracking.get("effectiveness", "TRACKING") if is_enabled(entry) else "DISABLED"
        estimate = tracking.get("estimate")
        shown = "-" if estimate is None else f"{estimate:+.3f}"
        click.echo(
            f"{entry.get('id')}  {entry.get('agent_type')}  {state}  sessions={tracking.get('session_count', 0)}  "
            f"estimate={shown}  {entry.get('title', '')}"
        )


@suggestions.command("show")
@click.argument("suggestion_id")
@config_option
@data_dir_option
def suggestions_show(suggestion_id: str, config_path: Path | None, data_dir: Path | None) -> None:
    """Print one active suggestion as JSON, with its experiment's tracking."""
    for entry in suggestions_of(load_active(_data_dir_of(config_path, data_dir))):
        if entry.get("id") == suggestion_id:
            click.echo(json.dumps(entry, indent=2))
            return
    raise click.ClickException(f"no active suggestion {suggestion_id!r}")


@suggestions.command("disable")
@click.argument("suggestion_id")
@config_option
@data_dir_option
def suggestions_disable(suggestion_id: str, config_path: Path | None, data_dir: Path | None) -> None:
    """Stop injecting and tracking a suggestion (it keeps its rule out of active.json)."""
    if not disable(_data_dir_of(config_path, data_dir), suggestion_id, _now_iso()):
        raise click.ClickException(f"no active suggestion {suggestion_id!r}")
    click.echo(f"disabled {suggestion_id}")


@suggestions.command("enable")
@click.argument("suggestion_id")
@config_option
@data_dir_option
def suggestions_enable(suggestion_id: str, config_path: Path | None, data_dir: Path | None) -> None:
    """Resume a disabled suggestion."""
    if not enable(_data_dir_of(config_path, data_dir), suggestion_id, _now_iso()):
        raise click.ClickException(f"no active suggestion {suggestion_id!r}")
    click.echo(f"enabled {suggestion_id}")


@main.group()
def alerts() -> None:
    """List or acknowledge pages (incidents and CRITICAL hard thresholds)."""


@alerts.command("list")
@click.option("--agent-type", help="Only this agent type's pages.")
@click.option("--all", "show_all", is_flag=True, help="Acknowledged pages too.")
@config_option
@data_dir_option
def alerts_list(agent_type: str | None, show_all: bool, config_path: Path | None, data_dir: Path | None) -> None:
    """One line per page: id, state, kind, KPI, session, opened."""
    document = load_pages(_data_dir_of(config_path, data_dir))
    wanted = str(sanitize_agent_type(agent_type)) if agent_type else None
    shown = [
        page
        for page in document["pages"]
        if isinstance(page, dict) and wanted in (None, page.get("agent_type"))
        and (show_all or not page.get("acknowledged_at"))
    ]  # fmt: skip
    if not shown:
        click.echo("no open pages" if not show_all else "no pages")
    for page in shown:
        state = f"acknowledged {page['acknowledged_at']}" if page.get("acknowledged_at") else "OPEN"
        click.echo(
            f"{page.get('id')}  {state}  {page.get('kind')}  {page.get('kpi')}  "
            f"session={page.get('session_id')}  opened={page.get('opened_at')}"
        )


@alerts.command("ack")
@click.argument("page_ids", nargs=-1)
@click.option("--agent-type", help="Acknowledge this agent type's open pages (all of them without page ids).")
@config_option
@data_dir_option
def alerts_ack(
    page_ids: tuple[str, ...], agent_type: str | None, config_path: Path | None, data_dir: Path | None
) -> None:
    """Acknowledge pages: the ones named, else every open page (of --agent-type when given)."""
    wanted = str(sanitize_agent_type(agent_type)) if agent_type else None
    done = acknowledge(_data_dir_of(config_path, data_dir), _now_iso(), page_ids, wanted)
    missing = sorted(set(page_ids) - set(done))
    for page_id in done:
        click.echo(f"acknowledged {page_id}")
    if missing:
        raise click.ClickException(f"no open page {', '.join(map(repr, missing))}")
    if not done:
        click.echo("no open pages")


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _kpiloop_command() -> str:
    """The kpiloop console script next to this interpreter, else ``python -m kpiloop``."""
    script = Path(sys.executable).parent / "kpiloop"
    return str(script) if script.exists() else f"{sys.executable} -m kpiloop"


def _footer(rows: Sequence[Row], empty: int, history: Path) -> str:
    skipped = sum(1 for row in rows if row.status == SKIPPED)
    parts = [f"{len(rows) - skipped} session(s) recorded in {history}"]
    if skipped:
        parts.append(f"{skipped} already in history (use --force to re-record)")
    if empty:
        parts.append(f"{empty} empty session(s) ignored")
    return "; ".join(parts)


class ProblemReporter:
    """Prints the first malformed lines as ``file:line: message`` and counts the rest."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, problem: LineProblem) -> None:
        self.count += 1
        if self.count <= MAX_PROBLEMS_SHOWN:
            click.echo(f"{problem.file}:{problem.line}: skipped: {problem.message}", err=True)

    def finish(self) -> None:
        """Say how many problems were not shown."""
        if self.count > MAX_PROBLEMS_SHOWN:
            click.echo(f"... and {self.count - MAX_PROBLEMS_SHOWN} more skipped line(s)", err=True)


class Progress:
    """A one-line progress indicator on stderr (only when stderr is a terminal)."""

    def __init__(self, files: Sequence[str]) -> None:
        self._total = sum(os.path.getsize(f) for f in files if f != "-") or 0

    def __call__(self, done: int) -> None:
        if self._total:
            click.echo(
                f"\rreplaying: {done / 1e6:,.1f} / {self._total / 1e6:,.1f} MB ({done / self._total:.0%})",
                err=True,
                nl=False,
            )
        else:
            click.echo(f"\rreplaying: {done / 1e6:,.1f} MB", err=True, nl=False)

    def finish(self) -> None:
        """End the progress line."""
        click.echo("", err=True)
