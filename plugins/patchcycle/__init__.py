"""Patchcycle: compliance-driven OS patch cycles on Apache Airflow."""

__version__ = "0.1.0"
