"""The top layer: the ``patchdrop`` command line, over the same pipelines as the API and the worker."""
