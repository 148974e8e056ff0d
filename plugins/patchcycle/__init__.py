"""Patchcycle: compliance-driven OS patch cycles on Apache Airflow."""
