"""The edge↔store wire protocol: every request and answer an edge box and the case store exchange.

Both sides build and parse their messages with these pydantic models only; ``pipeline/`` and ``api/``
import this package and it imports neither. What travels:

- :mod:`contract.paths`: the endpoints a device calls.
- :mod:`contract.reports`: a confirmed incident (:class:`CaseReport`), its later sightings and its end
  (:class:`IncidentUpdate`), what the store answers, the kinds of evidence image.
- :mod:`contract.device_config`: the device's configuration (cameras, zones with every rule field, the
  violation types and their event codes, the time zone), polled with an ETag.
- :mod:`contract.schedule`: the one schedule form (weekly windows) and its text notation.
- :mod:`contract.device_cases`: resolved cases to verify by camera, and the verify / rework actions.
- :mod:`contract.health`: a camera's health report.
- :mod:`contract.fields`: the constrained field types the models share.
"""
