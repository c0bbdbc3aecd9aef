"""Thin typed wrappers, one module per Pacemaker tool, all through the runner."""
