"""Registers Patchcycle's Airflow plugin (the Patchcycle page: :mod:`patchcycle.ui`) with Airflow.

Airflow loads the plugins folder's top-level files (``patchcycle/`` itself is excluded by
``.airflowignore``: it is a package, imported by name), so this file is the whole registration, the same
in every deployment that mounts ``plugins/`` (compose, the process stack, the tests).
"""

from patchcycle.ui.plugin import PatchcyclePlugin

__all__ = ["PatchcyclePlugin"]
