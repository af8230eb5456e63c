"""Placeholder package: see the open issues; nothing here yet."""
