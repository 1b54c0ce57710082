"""Platform detection and provenance (clock, power and MPS controls arrive here too)."""

from .platform import collect_provenance, detect_platform

__all__ = ["collect_provenance", "detect_platform"]
