"""Source analysis with tree-sitter: functions, docstrings, body spans."""
