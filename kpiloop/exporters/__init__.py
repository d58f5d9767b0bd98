"""Exporters: sinks for closed-session summaries (history file, console table, metrics)."""
