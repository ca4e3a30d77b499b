"""The edge daemon: sources, sampling, scheduling, tracking, zones and rules, cases, evidence, outbox.

Built in the edge-daemon issue; the package exists now so the distribution's layout is fixed.
"""
