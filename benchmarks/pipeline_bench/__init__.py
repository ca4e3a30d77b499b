"""The parts of ``benchmarks/bench_pipeline.py`` (cameras per box), one idea a module.

``clip`` and ``model`` prepare the inputs, ``ceiling`` measures what the box can do at most, ``harness``
runs a trial of either system (``streetwatch`` or the ``naive`` baseline loop), each in its own
``process``; ``verdict`` judges trials, ``search`` finds the largest K that passes, ``report`` writes the
CSV and the table. ``benchmarks/bench_pipeline.py`` is the command line that ties them together.
"""
