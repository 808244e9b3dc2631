"""pytest plugin of the bare check: each report's node id, phase and outcome as JSON lines.

Loaded with ``-p outcomes_plugin`` inside the bare container; writes to $ACCURACY_OUT.
The ids come from pytest itself, not from a JUnit file's attributes.
"""

import json
import os


def _write(nodeid, when, outcome):
    with open(os.environ["ACCURACY_OUT"], "a", encoding="utf-8") as out:
        out.write(json.dumps({"nodeid": nodeid, "when": when, "outcome": outcome}) + "\n")


def pytest_runtest_logreport(report):
    _write(report.nodeid, report.when, report.outcome)


def pytest_collectreport(report):
    if report.failed:
        _write(report.nodeid, "collect", "failed")
