"""Contracts shared by every part of the gateway: messages, events, config, errors, subjects.

This package imports nothing else of ours.
"""
