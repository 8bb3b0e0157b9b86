"""Meetings and their legs: state machines that record what happened as events. No I/O."""
