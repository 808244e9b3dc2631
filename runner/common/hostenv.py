"""The one environment every host subprocess of the runner gets (git, uv, pip).

An allowlist, never a denylist: a secret under a name nobody thought of
(ANTHROPIC_API_KEY, RUNNER_* tokens, a CI's GITHUB_TOKEN) stays in the runner's
process. Only what the tools need to run and to reach the host's package index passes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Names passed through as they are.
ALLOWED = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "TMPDIR",
        # Where pip finds its configuration files (the host's index lives there).
        "XDG_CONFIG_HOME",
        "XDG_CONFIG_DIRS",
        "XDG_CACHE_HOME",
        "PIP_CONFIG_FILE",
        # Certificates for an index behind a private CA.
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "UV_CACHE_DIR",
        # Proxies, both spellings.
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    }
)
# pip's index options as variables: the host's package access may be configured there.
ALLOWED_PIP = frozenset(
    {
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_FIND_LINKS",
        "PIP_NO_INDEX",
        "PIP_TRUSTED_HOST",
        "PIP_CERT",
        "PIP_CLIENT_CERT",
        "PIP_TIMEOUT",
        "PIP_RETRIES",
        "PIP_PROXY",
        "PIP_DEFAULT_TIMEOUT",
        "PIP_DISABLE_PIP_VERSION_CHECK",
    }
)
FALLBACK_PATH = "/usr/local/bin:/usr/bin:/bin"


def host_env(
    extra: Mapping[str, str] | None = None, source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The allow-listed part of ``source`` (the runner's environment) plus ``extra``."""
    environ = os.environ if source is None else source
    env = {k: v for k, v in environ.items() if k in ALLOWED or k in ALLOWED_PIP}
    env.setdefault("PATH", FALLBACK_PATH)
    env.setdefault("LANG", "C.UTF-8")
    env.update(extra or {})
    return env
