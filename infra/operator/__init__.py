"""Operator tools: the ``gateway`` command, ``gateway up``'s supervisor, ``gateway sql``'s client."""
