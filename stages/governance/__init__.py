"""Governance stage logic, pure functions over ``schemas.governance``: tenant policy (``access.py``), a
request's maximum cost, admission over a scope's ledger state (budget, RPM/TPM), settlement, and the
rate-limit status for the answer's headers. The shared ledger itself (NATS KV, compare-and-set) is
``infra/ledger.py``; the policy worker wires the two."""
