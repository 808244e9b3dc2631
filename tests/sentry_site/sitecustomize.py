"""Loaded at interpreter start (on PYTHONPATH): the Sentry SDK, as an app initialises it.

With SENTRY_DSN set, every Python started with this folder on its path reports its
uncaught exceptions to that DSN, so the bundled Flask example runs unmodified
(`python scripts/seed_db.py`) and its error reaches `runner serve` the way production
errors do. The SDK picks the release up from git (the commit it runs).
"""

import os

if os.environ.get("SENTRY_DSN"):
    import sentry_sdk

    # A plain script: the integrations for frameworks it does not use only cost start-up.
    sentry_sdk.init(
        dsn=os.environ["SENTRY_DSN"], send_default_pii=False, auto_enabling_integrations=False
    )
