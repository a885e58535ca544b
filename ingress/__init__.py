"""The HTTP edge: validate, authenticate, publish one envelope, wait for the answer. No business logic."""
