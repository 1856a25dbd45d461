"""PatchDrop domain package: networks, patch grid, policies, checkpoints, training.

Never imports fastapi, celery, ``service`` or ``worker``.
"""
