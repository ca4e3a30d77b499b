"""The admin pages: reference data, cameras, devices and users, managed in the console by admins.

One module per area (``units``, ``places``, ``violation_types``, ``routing``, ``calendar``, ``cameras``,
``devices``, ``users``; ``audit`` lists the trail of every change, :mod:`api.admin_audit`); :mod:`.forms`
holds the guard, form reading and messages they share, and :mod:`.pages`
the generic list/edit rendering. Importing a YAML file (``streetwatch api import-config``)
stays for a whole city at once; these pages are the daily way.
"""

from __future__ import annotations

from api.console.admin import (
    audit,
    calendar,
    cameras,
    devices,
    index,
    places,
    routing,
    units,
    users,
    violation_types,
)

MODULES = (index, units, places, violation_types, routing, calendar, cameras, devices, users, audit)
