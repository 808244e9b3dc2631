"""Every label key the runner puts on a container or an image, in one place.

Sweeps, recovery and `runner gc` find what a runner made by these keys, so a key
spelled twice is a container that nobody removes.
"""

from __future__ import annotations

LABEL_PREFIX = "io.fixrunner"
# On every container: who made it, for which job and phase, and when it may be swept.
LABEL_OWNER = f"{LABEL_PREFIX}.owner"
LABEL_JOB = f"{LABEL_PREFIX}.job"
LABEL_PHASE = f"{LABEL_PREFIX}.phase"
LABEL_DEADLINE = f"{LABEL_PREFIX}.deadline"
# On images (and environment build containers): what they are and how they were made.
LABEL_KIND = f"{LABEL_PREFIX}.kind"
LABEL_VERSION = f"{LABEL_PREFIX}.runner-version"
LABEL_RECIPE = f"{LABEL_PREFIX}.recipe"
LABEL_RECIPE_HASH = f"{LABEL_PREFIX}.recipe-hash"
LABEL_ENV_HASH = f"{LABEL_PREFIX}.env-hash"
LABEL_INSTALL = f"{LABEL_PREFIX}.install-mode"
LABEL_PYTHON = f"{LABEL_PREFIX}.python"
LABEL_TARGET = f"{LABEL_PREFIX}.env-target"  # on a build container: the tag it builds
