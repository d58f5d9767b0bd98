"""kpiloop: measure AI coding-agent sessions from their telemetry and close the improvement loop."""

__version__ = "0.1.0"
