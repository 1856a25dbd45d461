"""The HTTP edge: settings, schemas, routes, the errors table, job submission, plan storage.

Never imports torch at module level: in the embedded mode the task code is
imported lazily, on the first request (or when the app starts and preloads).
"""
