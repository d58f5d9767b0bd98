"""Processors: the streaming session processor and its pure KPI formulas."""
