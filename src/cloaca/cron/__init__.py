"""Cron expressions (our own parser) and schedules with their DST rules."""
