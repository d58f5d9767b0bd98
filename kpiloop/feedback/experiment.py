r"""Did an active suggestion work? The randomized, anytime-valid test (DESIGN.md section 5).

Each session of the agent type is *treated* (the suggestion was shown at session start) or
*control* (it was not), each with probability :math:`\pi = 1/2`, fixed by
:func:`kpiloop.feedback.assignment.assigned`. For session :math:`i` with arm :math:`A_i \in \{0, 1\}`
and transformed target KPI :math:`Y_i` (log or logit, :mod:`kpiloop.feedback.transforms`) the
pseudo-outcome is

.. math::
    \varphi_i = \frac{A_i - \pi}{\pi (1 - \pi)} (Y_i - m_{i-1}) = \pm 2 (Y_i - m_{i-1}),

where :math:`m_{i-1}` is the mean of the earlier :math:`Y` of the same experiment (predictable, so
:math:`E[\varphi_i \mid \text{past}] = \mu_{treated} - \mu_{control}` exactly; centring removes the
KPI's level from the variance — the first session only sets :math:`m`). The running mean
:math:`\hat\mu_t` of :math:`\varphi_1..\varphi_t` is covered, at every :math:`t` simultaneously, by
the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas,
"Time-uniform central limit theory and asymptotic confidence sequences" (Ann. Statist. 2024,
arXiv:2103.06476, Thm. 2.2, the Robbins normal-mixture boundary; sec. 3 for randomized
experiments):

.. math::
    \hat\mu_t \pm \hat\sigma_t \sqrt{\frac{2 (t \rho^2 + 1)}{t^2 \rho^2}
        \log\frac{\sqrt{t \rho^2 + 1}}{\alpha}},
    \qquad \rho^2 = \frac{-2 \log\alpha + \log(1 - 2 \log\alpha)}{t^\star},

with :math:`\alpha = 0.05`, :math:`\hat\sigma_t` the sample standard deviation of the
:math:`\varphi` (floored at twice the KPI's ``min_scale``) and :math:`t^\star` =
``max_tracked_sessions / 2``, where the boundary is tightest. Because it holds uniformly in
:math:`t`, looking after every session does not inflate the error rate. Decisions (need
:data:`MIN_SESSIONS` sessions with :data:`MIN_PER_ARM` in each arm):

- **PROVEN**: the sequence excludes 0 on the good side (the rule's ``direction``) → promote;
- **HARMFUL**: it excludes 0 on the bad side → retire at once;
- **INEFFECTIVE**: still undecided after ``max_tracked_sessions`` → retire;
- **TRACKING**: otherwise.

``effectiveness: plan`` selects the plan's rule instead, labelled as such: after 3 treated sessions
the suggestion is PROVEN when the KPI beat its baseline by more than 20 % (in the good direction)
in at least 2 of them, else INEFFECTIVE. It has no control group and promotes suggestions with no
effect often (see tests/unit/feedback/test_experiment.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.transforms import KPI_SCALES, scale_for
from kpiloop.model import KPI_DIRECTIONS, Direction

ALPHA = 0.05
MIN_SESSIONS = 10
MIN_PER_ARM = 3
PLAN_SESSIONS = 3
PLAN_THRESHOLD = 0.20
PLAN_LABEL = "plan rule (KPI > 20 % better than baseline in 2 of 3 sessions; no control group)"
SEQUENTIAL_LABEL = "randomized sequential test (95 % anytime-valid confidence sequence)"

Effectiveness = Literal["TRACKING", "PROVEN", "HARMFUL", "INEFFECTIVE"]
Arm = Literal["treated", "control"]


@dataclass(frozen=True, slots=True)
class Decision:
    """Where an experiment stands. ``estimate``/``interval``: treated − control on the transformed
    scale (None for the plan rule); ``relative``: the plan's mean relative change (plan rule only)."""

    effectiveness: Effectiveness
    method: Literal["sequential", "plan"]
    sessions: int
    treated: int
    control: int
    estimate: float | None = None
    interval: tuple[float, float] | None = None
    relative: float | None = None

    @property
    def label(self) -> str:
        """How the decision was made, in words."""
        return PLAN_LABEL if self.method == "plan" else SEQUENTIAL_LABEL


def good_sign(kpi: str, direction: str | None) -> int:
    """+1 when larger values of the KPI are the hoped-for effect, -1 when smaller ones are."""
    if direction in ("increase", "decrease"):
        return 1 if direction == "increase" else -1
    return 1 if KPI_DIRECTIONS.get(kpi) == Direction.HIGHER_IS_BETTER else -1


def pseudo_outcomes(observations: Sequence[tuple[str, float]]) -> list[float]:
    """The :math:`\\varphi_i` of ``(arm, transformed value)`` pairs, in session order."""
    phis: list[float] = []
    total = 0.0
    for count, (arm, value) in enumerate(observations):
        if count:
            centre = total / count
            phis.append((2.0 if arm == "treated" else -2.0) * (value - centre))
        total += value
    return phis


def confidence_sequence(
    phis: Sequence[float], t_star: float, sd_floor: float = 0.0, alpha: float = ALPHA
) -> tuple[float, float, float] | None:
    """``(estimate, low, high)`` of the mean of ``phis`` (see the module docstring); None if empty."""
    t = len(phis)
    if t == 0:
        return None
    mean = math.fsum(phis) / t
    sd = max(math.sqrt(math.fsum((phi - mean) ** 2 for phi in phis) / t), sd_floor)
    rho2 = (-2.0 * math.log(alpha) + math.log(1.0 - 2.0 * math.log(alpha))) / t_star
    width = sd * math.sqrt(2.0 * (t * rho2 + 1.0) / (t * t * rho2) * math.log(math.sqrt(t * rho2 + 1.0) / alpha))
    return mean, mean - width, mean + width


def decide_sequential(
    observations: Sequence[tuple[str, float]],
    kpi: str,
    direction: str | None,
    max_sessions: int,
    min_scale: float | None = None,
) -> Decision:
    """The sequential decision on ``(arm, transformed value)`` pairs in session order."""
    treated = sum(1 for arm, _ in observations if arm == "treated")
    control = len(observations) - treated
    floor = 2.0 * (min_scale if min_scale is not None else KPI_SCALES[kpi].min_scale if kpi in KPI_SCALES else 0.0)
    cs = confidence_sequence(pseudo_outcomes(observations), max(max_sessions / 2.0, 1.0), floor)
    base = Decision("TRACKING", "sequential", len(observations), treated, control)
    if cs is None:
        return base
    estimate, low, high = cs
    state: Effectiveness = "TRACKING"
    if len(observations) >= MIN_SESSIONS and min(treated, control) >= MIN_PER_ARM:
        sign = good_sign(kpi, direction)
        if (sign > 0 and low > 0) or (sign < 0 and high < 0):
            state = "PROVEN"
        elif (sign > 0 and high < 0) or (sign < 0 and low > 0):
            state = "HARMFUL"
    if state == "TRACKING" and len(observations) >= max_sessions:
        state = "INEFFECTIVE"
    return Decision(state, "sequential", len(observations), treated, control, estimate, (low, high))


def decide_plan(
    results: Sequence[Mapping[str, Any]], kpi: str, direction: str | None, max_sessions: int | None = None
) -> Decision:
    """The plan's rule on the first :data:`PLAN_SESSIONS` treated results with a usable baseline
    (``kpi_before``); INEFFECTIVE when ``max_sessions`` pass without three such results."""
    sign = good_sign(kpi, direction)
    treated = [r for r in results if r.get("arm", "treated") == "treated"]
    changes: list[float] = []
    for result in treated:
        before, after = result.get("kpi_before"), result.get("kpi_after")
        if _number(before) and _number(after) and before:
            changes.append((after - before) / abs(before))
        if len(changes) == PLAN_SESSIONS:
            break
    control = sum(1 for r in results if r.get("arm") == "control")
    if len(changes) < PLAN_SESSIONS:
        undecided: Effectiveness = "TRACKING"
        if max_sessions is not None and len(results) >= max_sessions:
            undecided = "INEFFECTIVE"
        return Decision(undecided, "plan", len(results), len(treated), control)
    better = sum(1 for change in changes if sign * change > PLAN_THRESHOLD)
    state: Effectiveness = "PROVEN" if better >= 2 else "INEFFECTIVE"
    return Decision(state, "plan", len(results), len(treated), control, relative=math.fsum(changes) / len(changes))


def observations_of(results: Sequence[Mapping[str, Any]], kpi: str, config: FeedbackConfig) -> list[tuple[str, float]]:
    """``(arm, transformed kpi_after)`` of the impact results that have both."""
    scale = scale_for(kpi, config.min_scale) if kpi in KPI_SCALES else None
    pairs: list[tuple[str, float]] = []
    for result in results:
        arm, value = result.get("arm"), _float(result.get("kpi_after"))
        if arm in ("treated", "control") and value is not None:
            pairs.append((str(arm), scale.forward(value) if scale is not None else value))
    return pairs


def decide(entry: Mapping[str, Any], config: FeedbackConfig) -> Decision:
    """The decision for an active.json entry, by ``config.effectiveness``."""
    impact = entry.get("expected_impact") or {}
    kpi = str(impact.get("kpi", ""))
    direction = impact.get("direction")
    results = [r for r in (entry.get("tracking") or {}).get("impact_results", []) if isinstance(r, dict)]
    if config.effectiveness == "plan":
        return decide_plan(results, kpi, direction, config.max_tracked_sessions)
    min_scale = config.min_scale.get(kpi)
    return decide_sequential(
        observations_of(results, kpi, config), kpi, direction, config.max_tracked_sessions, min_scale
    )


def record_result(tracking: dict[str, Any], session: str, arm: Arm, kpi_before: float | None, kpi_after: float) -> None:
    """Add (or, for a session closing again, replace) one session's result in ``tracking``."""
    delta = None
    if kpi_before:
        change = (kpi_after - kpi_before) / abs(kpi_before) * 100.0
        delta = f"{change:+.1f}%"
    result = {"session": session, "arm": arm, "kpi_before": kpi_before, "kpi_after": kpi_after, "delta": delta}
    results = [r for r in tracking.get("impact_results", []) if isinstance(r, dict)]
    for index, existing in enumerate(results):
        if existing.get("session") == session:
            results[index] = result
            break
    else:
        results.append(result)
    tracking["impact_results"] = results
    applied = [s for s in tracking.get("sessions_applied", []) if isinstance(s, str)]
    if arm == "treated" and session not in applied:
        applied.append(session)
    tracking["sessions_applied"] = applied
    tracking["session_count"] = len(results)


def apply_decision(tracking: dict[str, Any], decision: Decision) -> None:
    """Write the decision's fields into ``tracking``."""
    tracking["effectiveness"] = decision.effectiveness
    tracking["estimate"] = decision.estimate
    tracking["interval"] = list(decision.interval) if decision.interval is not None else None
    tracking["promotion_eligible"] = decision.effectiveness == "PROVEN"
    tracking["decision_method"] = decision.method
    if decision.relative is not None:
        tracking["avg_improvement"] = f"{decision.relative * 100:+.1f}%"


def describe(decision: Decision, kpi: str) -> str:
    """The evidence in words, e.g. for retired.jsonl and the promoted block."""
    counts = f"{decision.sessions} sessions ({decision.treated} treated, {decision.control} control)"
    if decision.method == "plan":
        relative = "n/a" if decision.relative is None else f"{decision.relative * 100:+.1f}%"
        return f"{PLAN_LABEL}: {decision.effectiveness}, mean change vs baseline {relative}, {counts}"
    if decision.estimate is None or decision.interval is None:
        return f"{SEQUENTIAL_LABEL}: {decision.effectiveness}, {counts}"
    return f"{SEQUENTIAL_LABEL}: {decision.effectiveness}, {effect_text(kpi, decision)}, {counts}"


def effect_text(kpi: str, decision: Decision) -> str:
    """Treated vs control in readable units: a ratio for log-scale KPIs, log-odds for rates."""
    assert decision.estimate is not None and decision.interval is not None
    low, high = decision.interval
    kind = KPI_SCALES[kpi].kind if kpi in KPI_SCALES else None
    if kind == "log":
        return (
            f"{kpi} x{math.exp(decision.estimate):.2f} treated vs control "
            f"(95 % CS x{math.exp(low):.2f} to x{math.exp(high):.2f})"
        )
    unit = " log-odds" if kind == "logit" else ""
    return f"{kpi} {decision.estimate:+.2f}{unit} treated vs control (95 % CS {low:+.2f} to {high:+.2f})"


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and _number(value) else None


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
