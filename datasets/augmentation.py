"""The training augmentation settings streetwatch exposes, apart from datasets.train so that the CLI can
show their defaults without importing the training code at start-up."""

from __future__ import annotations

#: Largest random hue rotation of a training image, as a share of the colour circle (Ultralytics' hsv_h).
#: Ultralytics' own default: colours stay nearly as drawn.
DEFAULT_HUE_SHIFT = 0.015
#: Half the circle: every object is shown in every colour.
MAX_HUE_SHIFT = 0.5
