"""Pages come from sustained degradation: a one-sided CUSUM per KPI on the bad-direction robust z.

For each session and KPI (DESIGN.md section 5; Page 1954)::

    S ← max(0, S + z − k)        fires when S > h, and S then restarts at 0

``k`` (allowance, default 0.5) absorbs healthy noise; ``h`` (decision level, default 8) is how
much excess degradation, in robust standard deviations, adds up to an incident. A sustained
shift of δ sd fires after about h / (δ − k) sessions (≈ 5.3 for δ = 2). Each session's z is
capped at h / 2, so no single session, however extreme, opens an incident on its own: that is
what hard thresholds and per-session alerts are for.
"""

from __future__ import annotations

from collections.abc import Mapping


def update_cusum(
    state: Mapping[str, float], z_by_kpi: Mapping[str, float | None], k: float, h: float
) -> tuple[dict[str, float], frozenset[str]]:
    """New CUSUM state and the KPIs that fired; a None z leaves that KPI's sum unchanged.

    >>> update_cusum({"error_rate": 7.0}, {"error_rate": 2.0, "token_efficiency": -1.0}, 0.5, 8.0)
    ({'error_rate': 0.0, 'token_efficiency': 0.0}, frozenset({'error_rate'}))
    """
    new_state = dict(state)
    fired: set[str] = set()
    for kpi, z in z_by_kpi.items():
        if z is None:
            continue
        total = max(0.0, new_state.get(kpi, 0.0) + min(z, h / 2) - k)
        if total > h:
            fired.add(kpi)
            total = 0.0
        new_state[kpi] = total
    return new_state, frozenset(fired)
