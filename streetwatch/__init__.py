"""streetwatch: the command line that ties the detector, the edge pipeline and the case store together."""

__version__ = "0.1.0"
