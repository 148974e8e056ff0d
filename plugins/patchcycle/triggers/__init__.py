"""The cycle's waits in the triggerer: :mod:`~patchcycle.triggers.waits` (the trigger and its loop) and
:mod:`~patchcycle.triggers.checks` (the read-only checks it polls)."""
