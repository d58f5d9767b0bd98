"""Receivers: decode inputs (OTLP, JSONL files, hook payloads) into records, adapt records to events."""
