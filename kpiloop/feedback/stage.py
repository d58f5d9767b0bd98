"""The feedback stage: on every session close, compare with the agent type's baseline, alert only on
real regressions, watch for sustained degradation, suggest improvements, write the report, and
update the baseline. Runs the same in ``kpiloop serve`` and ``kpiloop replay``.

Order of one close: the baseline to compare with is computed from the sessions *before* this one;
the session (with its assessment) goes downstream (history line, metrics); then the history is
re-read and the baseline recomputed with this session in it.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from pathlib import Path

from kpiloop.feedback import alerts as alert_rules
from kpiloop.feedback.base import FeedbackObserver
from kpiloop.feedback.baselines import BaselineStore, choose_baseline, compute_baseline
from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.cusum import update_cusum
from kpiloop.feedback.history_index import HistoryIndex
from kpiloop.feedback.incidents import render_incident, write_incident
from kpiloop.feedback.loop import activate_from, track_and_decide
from kpiloop.feedback.pages import file_stamp, new_page, record_pages
from kpiloop.feedback.report import render_report, write_report
from kpiloop.feedback.rules import effective_rules
from kpiloop.feedback.suggestion_states import STATES as SUGGESTION_STATES
from kpiloop.feedback.suggestion_states import read_states
from kpiloop.feedback.suggestions import Suggestion, suggest, suggestions_document, write_suggestions
from kpiloop.feedback.transforms import KPI_SCALES
from kpiloop.feedback.types import Baseline, KpiBaseline, SessionRecord
from kpiloop.model import KPI_DIRECTIONS, Assessment, SessionSummary
from kpiloop.processors.base import SummaryConsumer
from kpiloop.types import Clock

log = logging.getLogger(__name__)

HISTORY_FILE = Path("history") / "kpis.jsonl"
TREND_SESSIONS = 10
THRESHOLD_FIT_SESSIONS = 20


class FeedbackStage:
    """A summary consumer that assesses each closed session and hands it on, enriched."""

    def __init__(
        self,
        next_consumer: SummaryConsumer,
        config: FeedbackConfig,
        data_dir: Path,
        clock: Clock,
        observer: FeedbackObserver | None = None,
    ) -> None:
        self._next = next_consumer
        self._config = config
        self._data_dir = data_dir
        self._clock = clock
        self._observer = observer
        self._rules = effective_rules(config)
        self._store = BaselineStore(data_dir, clock)
        self.history = HistoryIndex(data_dir / HISTORY_FILE)

    def start(self) -> None:
        """Read the history already on disk; publish the suggestion counts already on disk."""
        self.history.refresh()
        self._publish_suggestions(None)

    def shutdown(self) -> None:
        """Nothing buffered: every file is written when ``consume`` returns."""

    def consume(self, summary: SessionSummary) -> None:
        """Assess one closed session, pass it on, then learn from it."""
        self.history.refresh()
        now = self._now()
        agent, model = summary.agent_type, summary.model
        before = [r for r in self.history.records(agent) if r.session_id != summary.session_id]
        stored = self._store.load(agent)
        baseline = choose_baseline(stored, agent, model, before, self._config, now)
        kpis = dict(summary.kpis) | {"cost_per_output_token": summary.cost_per_output_token}
        thresholds = alert_rules.thresholds_for(agent, self._config)
        recent = self.history.records(agent)[-THRESHOLD_FIT_SESSIONS:]
        unfit = alert_rules.unfit_thresholds(recent, thresholds)
        alerts = alert_rules.evaluate_alerts(kpis, baseline, thresholds, unfit, self._config)
        suggestions = suggest(summary, self._rules)
        active_ids = self._track_experiments(summary, now)
        assessment = Assessment(
            alert_level=alert_rules.alert_level(alerts),
            baselines=_centres(baseline),
            alerts=alerts,
            baseline_status=baseline.status,
            optimizations_active=active_ids,
        )
        enriched = dataclasses.replace(summary, assessment=assessment)
        self._next.consume(enriched)  # the history line: from here on the session is recorded
        incidents: list[str] = []
        try:
            incidents = self._learn(enriched, baseline, stored, kpis, now)
        except OSError:  # a full disk must not cost the report, suggestions or pages of this close
            log.exception("could not update the %s baseline after session %s", agent, summary.session_id)
        try:
            self._write_outputs(enriched, baseline, suggestions, now)
        except OSError:
            log.exception("could not write the report of session %s", summary.session_id)
        self._activate(summary, suggestions, now)
        self._page(enriched, incidents, now)
        self._publish_suggestions(summary.agent_type)

    def _track_experiments(self, summary: SessionSummary, now: str) -> tuple[str, ...]:
        """Record this session in every running experiment of its agent type; decide, promote, retire."""
        try:
            return track_and_decide(summary, self._data_dir, self._config, now)
        except OSError:  # an unwritable agent file or CLAUDE.md must not stop the close
            log.exception("impact tracking failed for session %s", summary.session_id)
            return ()

    def _activate(self, summary: SessionSummary, suggestions: list[Suggestion], now: str) -> None:
        try:
            activate_from(summary, suggestions, self._data_dir, self._config, now)
        except OSError:
            log.exception("could not activate suggestions of session %s", summary.session_id)

    def _learn(
        self,
        summary: SessionSummary,
        baseline: Baseline,
        stored: Baseline | None,
        kpis: dict[str, float | None],
        now: str,
    ) -> list[str]:
        """Update the baseline with this session; returns the KPIs whose incident opened now."""
        agent, model = summary.agent_type, summary.model
        cusum, fired = dict(baseline.cusum), frozenset[str]()
        z: dict[str, float | None] = {}
        if summary.close_count == 1 and baseline.status == "converged":
            z = {kpi: alert_rules.bad_direction_z(kpi, kpis.get(kpi), kb) for kpi, kb in baseline.kpis.items()}
            cusum, fired = update_cusum(baseline.cusum, z, self._config.cusum_k, self._config.cusum_h)
        self.history.refresh()
        all_models = self.history.records(agent)
        records = [r for r in all_models if r.model == model]
        if stored is not None and stored.model not in (None, model):
            self._store.archive(agent)
        plan_file_in_use = stored is not None and stored.method == "plan"
        plan_file_in_use = plan_file_in_use and len(all_models) < self._config.bootstrap_sessions
        previous = dataclasses.replace(baseline, cusum=cusum)
        updated = compute_baseline(agent, model, records, self._config, now, previous)
        if not plan_file_in_use:
            self._store.save(updated)
        self._publish_baseline(updated)
        for kpi in sorted(fired):
            step = min(z.get(kpi) or 0.0, self._config.cusum_h / 2)  # update_cusum caps each z at h / 2
            fired_at = baseline.cusum.get(kpi, 0.0) + step - self._config.cusum_k  # S before reset
            self._open_incident(agent, kpi, fired_at, records, now)
        return sorted(fired)

    def _page(self, summary: SessionSummary, incidents: list[str], now: str) -> None:
        """Record this close's pages (incidents, CRITICAL hard thresholds) for ``kpiloop alerts``."""
        assert summary.assessment is not None
        pages = [new_page(summary.agent_type, kpi, "incident", summary.session_id, now, None) for kpi in incidents]
        if summary.close_count == 1:
            pages += [
                new_page(summary.agent_type, alert.kpi, "threshold", summary.session_id, now, alert.value)
                for alert in summary.assessment.alerts
                if alert.kind == "threshold" and alert.severity == "CRITICAL"
            ]
        try:
            record_pages(self._data_dir, pages, self._config.block_on_critical)
        except OSError:
            log.exception("could not record the pages of session %s", summary.session_id)

    def _open_incident(self, agent: str, kpi: str, cusum: float, records: list[SessionRecord], now: str) -> None:
        stamp = file_stamp(now)
        text = render_incident(agent, kpi, records[-TREND_SESSIONS:], now, cusum, threshold=self._config.cusum_h)
        write_incident(self._data_dir, agent, kpi, stamp, text)
        if self._observer is not None:
            self._observer.incident(agent, kpi)

    def _write_outputs(
        self, summary: SessionSummary, baseline: Baseline, suggestions: list[Suggestion], now: str
    ) -> None:
        assert summary.assessment is not None
        if suggestions:
            write_suggestions(self._data_dir, suggestions_document(summary, suggestions, now))
        records = self.history.records(summary.agent_type, summary.model)[-TREND_SESSIONS:]
        trends = {kpi: [r.kpis.get(kpi) for r in records] for kpi in KPI_DIRECTIONS}
        text = render_report(summary, baseline, summary.assessment, suggestions, trends)
        write_report(self._data_dir, summary.session_id, text)

    def _publish_suggestions(self, agent_type: str | None) -> None:
        """Tell the observer the suggestion counts of ``agent_type`` (of every agent type when None)."""
        if self._observer is None:
            return
        states = read_states(self._data_dir)
        if agent_type is not None:
            states = {agent_type: states.get(agent_type, dict.fromkeys(SUGGESTION_STATES, 0))}
        for agent, counts in sorted(states.items()):
            self._observer.suggestions_counted(agent, counts)

    def _publish_baseline(self, baseline: Baseline) -> None:
        if self._observer is None:
            return
        for kpi, kb in baseline.kpis.items():
            if kb.center is not None and kb.scale is not None:
                self._observer.baseline_updated(baseline.agent_type, kpi, kb.center, kb.scale)

    def _now(self) -> str:
        return datetime.fromtimestamp(self._clock.now(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _centres(baseline: Baseline) -> dict[str, float]:
    """Each KPI's baseline centre on the KPI's own scale (the plan's history ``baselines``)."""
    centres = {}
    for kpi, kb in baseline.kpis.items():
        centres[kpi] = _centre(kpi, kb)
    return centres


def _centre(kpi: str, kb: KpiBaseline) -> float:
    if kb.center is not None and not kb.raw and kpi in KPI_SCALES:
        return KPI_SCALES[kpi].inverse(kb.center)
    return kb.mean
