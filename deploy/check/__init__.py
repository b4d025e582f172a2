"""Static checks of everything that deploys Podium, with no cluster and no Docker engine.

    python -m deploy.check            # every check
    python -m deploy.check tiltfile   # some of them

Each check returns a list of problems; an empty list passes. See `__main__.py`
for the list, and docs/operations.md for what each one guards.
"""
