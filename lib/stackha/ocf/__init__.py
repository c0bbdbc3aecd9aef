"""The OCF agent framework: declarations, context, exit codes, dispatch, and agent helpers."""
