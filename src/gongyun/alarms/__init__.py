"""Alarms: rules, ISA-18.2 states, shelving, notifications (webhook, e-mail) and history."""
