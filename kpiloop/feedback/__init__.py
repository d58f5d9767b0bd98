"""Feedback on session close: baselines, alerts, incidents, suggestions, reports."""
