"""Mechanisms shared by the detector, the daemon, the case store and the datasets tools.

Nothing here imports from ``api``, ``pipeline``, ``detector`` or ``datasets``: each of them may depend
on ``common``, never the other way round.
"""
