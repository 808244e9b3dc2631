"""SARIF 2.1.0 of the lint findings a candidate introduced, for code scanning.

One run, tool ``fixrunner-flake8``, one rule per flake8 code; locations are relative to
the repository root (``uriBaseId`` ``%SRCROOT%``), so GitHub maps them onto the checkout.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from runner.models import LintFinding, Verdict

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
TOOL_NAME = "fixrunner-flake8"
SRCROOT = "%SRCROOT%"
# Where each family of flake8 codes is documented (pyflakes F, pycodestyle E/W, mccabe C9).
_HELP = {
    "F": "https://flake8.pycqa.org/en/latest/user/error-codes.html",
    "E": "https://pycodestyle.pycqa.org/en/latest/intro.html#error-codes",
    "W": "https://pycodestyle.pycqa.org/en/latest/intro.html#error-codes",
    "C9": "https://flake8.pycqa.org/en/latest/user/error-codes.html",
}


def _uri(path: str) -> str:
    # Relative to the repository root: no "./", no leading "/", percent-encoded.
    while path.startswith("./"):
        path = path[2:]
    return quote(path.lstrip("/"), safe="/")


def _rule(code: str, blocking: bool) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": code,
        "name": f"flake8-{code}",
        "shortDescription": {"text": f"flake8 {code}"},
        "defaultConfiguration": {"level": "error" if blocking else "warning"},
    }
    help_uri = _HELP.get(code[:2]) or _HELP.get(code[:1])
    if help_uri:
        rule["helpUri"] = help_uri
    return rule


def _result(finding: LintFinding, rule_index: int) -> dict[str, Any]:
    region: dict[str, Any] = {"startLine": max(finding.line, 1)}
    if finding.col > 0:
        region["startColumn"] = finding.col
    return {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": "error" if finding.blocking else "warning",
        "message": {"text": f"{finding.code} {finding.message}"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": _uri(finding.path), "uriBaseId": SRCROOT},
                    "region": region,
                }
            }
        ],
    }


def sarif_document(verdict: Verdict) -> dict[str, Any]:
    """The SARIF log of the verdict's new lint findings (an empty result list is valid)."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results = []
    for finding in verdict.lint.new:
        if finding.code not in index:
            index[finding.code] = len(rules)
            rules.append(_rule(finding.code, finding.blocking))
        elif finding.blocking:
            # a code is blocking by policy, so any blocking finding makes its rule an error
            rules[index[finding.code]]["defaultConfiguration"]["level"] = "error"
        results.append(_result(finding, index[finding.code]))
    driver: dict[str, Any] = {
        "name": TOOL_NAME,
        "informationUri": "https://flake8.pycqa.org/",
        "rules": rules,
    }
    if verdict.runner_version:
        driver["version"] = verdict.runner_version
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {"driver": driver},
                "automationDetails": {"id": f"fixrunner/{verdict.job_id}"},
                "columnKind": "unicodeCodePoints",
                "results": results,
                "properties": {"verdict": verdict.status},
            }
        ],
    }


def render_sarif(verdict: Verdict) -> str:
    """The SARIF document as JSON text."""
    return json.dumps(sarif_document(verdict), indent=2) + "\n"
