"""Teleconsult: teleconsultation server for French private-practice doctors, nurses and patients."""

__version__ = "0.1.0"
