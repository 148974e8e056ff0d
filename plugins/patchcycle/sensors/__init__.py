"""Airflow sensors of the cycle: the gate that waits for a stage's backups."""
