"""Airflow operators: the tasks of the patch cycle, its rollback, the evidence sweep, feeds and portfolio."""
