"""The edge daemon: sources, sampling, scheduling, tracking, zones and rules, cases, evidence, outbox."""
