"""Guardrails: small classes that check a request (input) or its answer (output) and say how sure they
are that something is wrong. See ``base.py`` for the contract, ``registry.py`` for how they are found."""
