"""Thin Celery tasks around ``models``, and the plain job functions they call.

Imports no FastAPI and nothing from ``service``. Importing ``worker.app`` or
``worker.settings`` loads no torch: only ``worker.jobs`` and ``worker.registry`` do.
"""
