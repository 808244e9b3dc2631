"""The GitHub Action: github renderer, SARIF, JUnit files, action.yml, and the step script
run end to end in a simulated GitHub environment against the real sandbox."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import TEST_INSTANCE as SESSION_INSTANCE
from junitparser import JUnitXml

from runner.cli.main import _verify_parser, exit_code
from runner.core.suite import parse_junit
from runner.errors import UsageError
from runner.models import (
    Check,
    LintFinding,
    LintSummary,
    PhaseLog,
    RunCounts,
    TestResult,
    TestSummary,
    Verdict,
)
from runner.reports.github import (
    escape_data,
    escape_property,
    output_entry,
    quote_untrusted,
    render_summary,
    workflow_annotations,
    workflow_command,
)
from runner.reports.junit import rebuild, write_junit
from runner.reports.sarif import render_sarif, sarif_document

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"
# The owner label conftest's leftover check watches ("pytest…").
TEST_INSTANCE = f"{SESSION_INSTANCE}-github"
EXAMPLE = REPO_ROOT / "examples" / "flask-app-context"
SCRIPT = REPO_ROOT / "scripts" / "action-run.sh"
COMMAND = re.compile(r"^::(error|warning|notice)(?: ([a-z]+=[^,:\r\n]*(?:,[a-z]+=[^,:\r\n]*)*))?::")


# ---------------------------------------------------------------- GitHub's readers


def parse_github_output(text: str) -> dict[str, str]:
    """Read a $GITHUB_OUTPUT file as the runner does: name=value, or name<<DELIM … DELIM."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body: list[str] = []
            while True:
                if i >= len(lines):
                    raise ValueError(f"no closing delimiter {delimiter!r} for {name}")
                if lines[i] == delimiter:
                    i += 1
                    break
                body.append(lines[i])
                i += 1
            values[name] = "\n".join(body)
        else:
            name, sep, value = line.partition("=")
            if not sep or not name:
                raise ValueError(f"not an output line: {line!r}")
            values[name] = value
    return values


def unescape(value: str) -> str:
    """GitHub's unescaping of command data and properties."""
    return (
        value.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
    )


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    """One workflow command line → (name, properties, message), unescaped."""
    match = COMMAND.match(line)
    assert match, f"malformed workflow command: {line!r}"
    props = {}
    if match.group(2):
        for pair in match.group(2).split(","):
            key, _, value = pair.partition("=")
            props[key] = unescape(value)
    return match.group(1), props, unescape(line[match.end() :])


def annotation_lines(stdout: str) -> list[str]:
    """Workflow commands outside ::stop-commands:: blocks (the ones GitHub acts on)."""
    out, stopped = [], None
    # the runner reads lines as .NET does: CR, LF or CRLF end one (not U+2028, FS, …)
    for line in re.split(r"\r\n|\r|\n", stdout):
        if stopped is not None:
            if line == f"::{stopped}::":
                stopped = None
            continue
        if line.startswith("::stop-commands::"):
            stopped = line.removeprefix("::stop-commands::")
        elif line.startswith("::"):
            out.append(line)
    assert stopped is None, "a ::stop-commands:: block was never closed"
    return out


# ---------------------------------------------------------------- escaping and outputs


def test_escape_data_escapes_percent_cr_lf() -> None:
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"


def test_escape_data_keeps_colon_and_comma() -> None:
    assert escape_data("a: b, c") == "a: b, c"


def test_escape_property_also_escapes_colon_and_comma() -> None:
    assert escape_property("tests/t.py::test_a[1,2]%\n") == ("tests/t.py%3A%3Atest_a[1%2C2]%25%0A")


def test_escaping_round_trips_through_githubs_unescape() -> None:
    hostile = "50%25 %0A literal, ::error::x\r\n"
    assert unescape(escape_property(hostile)) == hostile
    assert unescape(escape_data(hostile)) == hostile


def test_workflow_command_leaves_out_empty_properties() -> None:
    line = workflow_command("error", "boom\nline 2", {"file": "a.py", "line": None, "title": ""})
    assert line == "::error file=a.py::boom%0Aline 2"


def test_single_line_output_is_name_equals_value() -> None:
    assert output_entry("verdict", "verified") == "verdict=verified\n"


def test_multi_line_output_uses_a_random_delimiter_and_round_trips() -> None:
    value = "first line\nEOF\nverdict=forged\n\nlast"
    entry = output_entry("summary", value)
    assert entry.splitlines()[0].startswith("summary<<ghadelimiter_")
    assert output_entry("summary", value) != entry  # a new delimiter every time
    parsed = parse_github_output(entry + output_entry("verdict", "rejected"))
    assert parsed == {"summary": value, "verdict": "rejected"}


def test_forced_heredoc_keeps_a_one_line_value() -> None:
    assert parse_github_output(output_entry("summary", "x=y", heredoc=True)) == {"summary": "x=y"}


def test_quote_untrusted_wraps_in_stop_commands() -> None:
    quoted = quote_untrusted("::error::injected\nplain")
    assert annotation_lines(quoted) == []
    assert "::error::injected" in quoted


# ---------------------------------------------------------------- annotations and summary


def _verdict(**update: object) -> Verdict:
    verdict = Verdict(
        job_id="job-1",
        status="rejected",
        summary="rejected: no_regressions (1 broke), lint (1 new blocking finding)",
        checks=[
            Check(name="applies", passed=True, detail="applied (clean)"),
            Check(name="no_regressions", passed=False, detail="1 passing test(s) broke"),
            Check(name="scope", passed=False, detail="big", required=False),
        ],
        tests=TestSummary(
            baseline=RunCounts(passed=2, failed=1, total=3),
            candidate=RunCounts(passed=2, failed=1, total=3),
            fail_to_pass=["tests/test_a.py::test_fixed"],
            pass_to_fail=["tests/test_a.py::TestX::test_broken[a,b]"],
            flaky=["tests/test_b.py::test_flaky"],
        ),
        lint=LintSummary(
            new=[
                LintFinding(
                    path="./app/x.py", line=6, col=1, code="F401", message="'os' unused"
                ).model_copy(update={"blocking": True}),
                LintFinding(path="app/y.py", line=3, col=80, code="E501", message="too long"),
            ]
        ),
        timings={"baseline": 1.5, "candidate": 2.0, "total": 4.0},
        logs=[PhaseLog(phase="candidate", head="```\n::error::forged\n</details>\n1 failed")],
        runner_version="0.1.0",
    )
    return verdict.model_copy(update=update)


def test_annotations_cover_lint_regressions_flaky_and_the_verdict() -> None:
    broken = TestResult(
        id="tests/test_a.py::TestX::test_broken[a,b]",
        outcome="failed",
        message="assert 1 == 2",
        line=31,
    )
    lines = [a.command() for a in workflow_annotations(_verdict(), {broken.id: broken})]
    parsed = [parse_command(line) for line in lines]
    assert parsed[0] == (
        "error",
        {"file": "app/x.py", "line": "6", "col": "1", "title": "flake8 F401"},
        "F401 'os' unused (new with this patch)",
    )
    assert parsed[1][0] == "warning"  # an advisory finding
    level, props, message = parsed[2]
    assert level == "error"
    assert props == {
        "file": "tests/test_a.py",
        "line": "31",
        "title": "Regression: tests/test_a.py::TestX::test_broken[a,b]",
    }
    assert message.endswith("fails with it: assert 1 == 2")
    assert parsed[3][0] == "warning" and parsed[3][1]["file"] == "tests/test_b.py"
    assert parsed[4][0] == "error" and parsed[4][1]["title"] == "fixrunner: rejected"
    assert all("\n" not in line for line in lines)


def test_a_regression_without_junit_evidence_still_names_its_file() -> None:
    lines = [a.command() for a in workflow_annotations(_verdict(), {})]
    _, props, _ = parse_command(lines[2])
    assert props["file"] == "tests/test_a.py" and "line" not in props


def test_summary_has_badge_checks_tests_lint_timings_and_logs() -> None:
    md = render_summary(_verdict())
    assert md.startswith("## ❌ **REJECTED** fixrunner")
    assert "| check | result | detail |" in md
    assert "| no\\_regressions | ❌ fail | 1 passing test(s) broke |" in md
    assert "| scope | ⚠️ advisory | big |" in md
    assert "**Regressions (pass → fail)** (1)" in md
    assert "`tests/test_a.py::test_fixed`" in md
    assert "| `app/x.py` | 6 | F401 | 'os' unused | yes |" in md
    assert "**Timings**: baseline 1.5s, candidate 2.0s, total 4.0s" in md
    assert "<summary>log tail: candidate</summary>" in md


def test_summary_keeps_hostile_text_inside_its_blocks() -> None:
    verdict = _verdict(
        tests=TestSummary(pass_to_fail=["tests/t.py::test_x[`|`]"]),
        checks=[Check(name="scope", passed=False, detail="a | b <script>\nnext")],
    )
    md = render_summary(verdict)
    assert "| scope | ❌ fail | a \\| b &lt;script&gt; next |" in md
    assert "- ``tests/t.py::test_x[`|`]``" in md
    # the log holds ``` and </details>: its fence is longer, so the block stays closed
    assert "````text\n```\n::error::forged\n</details>\n1 failed\n````" in md


# ---------------------------------------------------------------- SARIF


@pytest.fixture(scope="module")
def sarif_schema() -> dict[str, object]:
    return json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))


def test_sarif_validates_against_the_2_1_0_schema(sarif_schema: dict[str, object]) -> None:
    doc = json.loads(render_sarif(_verdict()))
    jsonschema.Draft4Validator(sarif_schema).validate(doc)


def test_sarif_schema_rejects_a_broken_document(sarif_schema: dict[str, object]) -> None:
    doc = sarif_document(_verdict())
    doc["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(sarif_schema).validate(doc)


def test_sarif_rules_levels_and_repository_relative_locations() -> None:
    run = sarif_document(_verdict())["runs"][0]
    assert run["tool"]["driver"]["name"] == "fixrunner-flake8"
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["F401", "E501"]
    first, second = run["results"]
    assert (first["ruleId"], first["level"], second["level"]) == ("F401", "error", "warning")
    location = first["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "app/x.py", "uriBaseId": "%SRCROOT%"}
    assert location["region"] == {"startLine": 6, "startColumn": 1}


def test_sarif_without_findings_is_valid_and_empty(sarif_schema: dict[str, object]) -> None:
    doc = sarif_document(_verdict(lint=LintSummary()))
    jsonschema.Draft4Validator(sarif_schema).validate(doc)
    assert doc["runs"][0]["results"] == []


# ---------------------------------------------------------------- JUnit files


def test_junit_rebuilt_from_the_verdict_parses(tmp_path: Path) -> None:
    paths = write_junit(_verdict(), None, tmp_path / "junit")
    assert [p.name for p in paths] == ["baseline.xml", "candidate.xml"]
    baseline = JUnitXml.fromfile(str(paths[0]))
    cases = {(c.classname, c.name): c.is_passed for suite in baseline for c in suite}
    assert cases == {
        ("tests.test_a", "test_fixed"): False,
        ("tests.test_a.TestX", "test_broken[a,b]"): True,
    }
    assert parse_junit(rebuild(_verdict(), "candidate")).error is None


def test_junit_copies_the_job_folders_file(tmp_path: Path) -> None:
    kept = tmp_path / "job" / "junit" / "candidate.xml"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(
        b'<testsuites><testsuite name="pytest" tests="1"><testcase classname="t" name="a" '
        b'file="t.py" line="0"/></testsuite></testsuites>'
    )
    (tmp_path / "job" / "junit" / "baseline.xml").write_text("<html/>", encoding="utf-8")
    write_junit(_verdict(), tmp_path / "job", tmp_path / "out")
    assert (tmp_path / "out" / "candidate.xml").read_bytes() == kept.read_bytes()
    # not JUnit: rebuilt rather than copied
    assert b"fixrunner baseline" in (tmp_path / "out" / "baseline.xml").read_bytes()


def test_junit_line_points_at_the_failing_frame_in_the_test_file() -> None:
    data = (
        b'<testsuite><testcase classname="tests.test_s" name="test_a" file="tests/test_s.py" '
        b'line="29"><failure message="boom">tests/test_s.py:31: in test_a\n  x()\n'
        b"app/s.py:3: in x\nE   boom</failure></testcase>"
        b'<testcase classname="tests.test_s" name="test_b" file="tests/test_s.py" line="40"/>'
        b"</testsuite>"
    )
    lines = {t.id: t.line for t in parse_junit(data).tests}
    assert lines == {"tests/test_s.py::test_a": 31, "tests/test_s.py::test_b": 41}


# ---------------------------------------------------------------- CLI


def test_verify_patch_accepts_the_ci_options() -> None:
    args = _verify_parser().parse_args(
        ["--repo", ".", "--patch", "p", "--format", "github", "--junit", "j", "--sarif", "s"]
    )
    assert (args.format, args.fail_on) == ("github", "rejected")


def test_verify_patch_refuses_an_unknown_fail_on() -> None:
    with pytest.raises(UsageError):
        _verify_parser().parse_args(["--repo", ".", "--patch", "p", "--fail-on", "always"])


@pytest.mark.parametrize(
    ("status", "fail_on", "code"),
    [
        ("verified", "rejected", 0),
        ("rejected", "rejected", 1),
        ("error", "rejected", 2),
        ("verified", "never", 0),
        ("rejected", "never", 0),
        ("error", "never", 2),
    ],
)
def test_exit_code_honours_fail_on(status: str, fail_on: str, code: int) -> None:
    assert exit_code(status, fail_on) == code


# ---------------------------------------------------------------- action.yml and workflow


def _action() -> dict[str, object]:
    return yaml.safe_load((REPO_ROOT / "action.yml").read_text(encoding="utf-8"))


def test_action_yml_validates_against_the_action_metadata_schema() -> None:
    schema = json.loads((FIXTURES / "github-action.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(_action())


def test_action_yml_is_a_composite_action_with_the_documented_interface() -> None:
    action = _action()
    for key in ("name", "description", "inputs", "outputs", "runs"):
        assert key in action
    runs = action["runs"]
    assert runs["using"] == "composite" and runs["steps"]
    assert set(action["inputs"]) >= {
        "patch",
        "test-patch",
        "base",
        "policy",
        "config",
        "fail-on",
        "repro",
        "expect-error",
    }
    assert action["inputs"]["fail-on"]["default"] == "rejected"
    assert set(action["outputs"]) >= {"verdict", "summary", "verdict-json"}


def test_every_action_input_is_used_and_every_output_maps_to_a_step() -> None:
    action = _action()
    steps = action["runs"]["steps"]
    text = yaml.safe_dump(steps)
    for name in action["inputs"]:
        assert f"inputs.{name} " in text or f"inputs.{name}}}" in text, name
    ids = {step.get("id") for step in steps}
    for name, output in action["outputs"].items():
        match = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.([\w-]+) \}\}", output["value"])
        assert match and match.group(1) in ids, name
        assert match.group(2) == name


def test_every_input_variable_reaches_the_script() -> None:
    script = SCRIPT.read_text(encoding="utf-8")
    step = _action()["runs"]["steps"][0]
    assert "scripts/action-run.sh" in step["run"]
    for variable in step["env"]:
        assert variable in script, variable


def test_example_workflow_validates_and_is_least_privilege() -> None:
    text = (REPO_ROOT / "examples" / "github" / "verify-fix.yml").read_text(encoding="utf-8")
    workflow = yaml.safe_load(text)
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as true
    schema = json.loads((FIXTURES / "github-workflow.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(workflow)
    assert workflow["on"] == {"pull_request": {"branches": ["fix/**"]}}
    assert workflow["permissions"] == {
        "contents": "read",
        "security-events": "write",
        "pull-requests": "read",
    }
    job = workflow["jobs"]["verify"]
    assert job["runs-on"] == ["self-hosted", "linux", "docker"]
    uses = [step.get("uses", "") for step in job["steps"]]
    assert uses[0].startswith("actions/checkout@")
    assert job["steps"][0]["with"]["fetch-depth"] == 0
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    assert any(u.startswith("github/codeql-action/upload-sarif@") for u in uses)


# ---------------------------------------------------------------- end to end (real sandbox)


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@fixrunner.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@fixrunner.invalid",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One state dir for the module: the second run reuses the first's caches."""
    path = tmp_path_factory.mktemp("state")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def pr_workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo repository with a PR branch fix/seed (good.diff) and its event JSON."""
    workspace = tmp_path_factory.mktemp("gh") / "workspace"
    subprocess.run(
        ["bash", str(EXAMPLE / "make-repo.sh"), str(workspace)], check=True, capture_output=True
    )
    base = _git(workspace, "rev-parse", "HEAD")
    _git(workspace, "checkout", "-q", "-b", "fix/seed")
    _git(workspace, "apply", str(EXAMPLE / "candidates" / "good.diff"))
    _git(workspace, "add", "-A")
    _git(workspace, "commit", "-q", "-m", "Push an app context in seed main()")
    head = _git(workspace, "rev-parse", "HEAD")
    event = workspace.parent / "event.json"
    event.write_text(
        json.dumps(
            {
                "action": "synchronize",
                "number": 7,
                "pull_request": {
                    "number": 7,
                    "base": {"ref": "main", "sha": base},
                    "head": {"ref": "fix/seed", "sha": head},
                },
            }
        ),
        encoding="utf-8",
    )
    return workspace, event


def run_action(
    tmp_path: Path, workspace: Path, event: Path, state_dir: Path, **inputs: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the composite action's script as the runner would, with the given inputs."""
    gh = tmp_path / "gh"
    gh.mkdir()
    # A clean slate: nothing from a real CI job's GitHub environment leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))}
    env.update(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_OUTPUT": str(gh / "output"),
            "GITHUB_STEP_SUMMARY": str(gh / "summary.md"),
            "GITHUB_ACTION_PATH": str(REPO_ROOT),
            "RUNNER_TEMP": str(gh / "temp"),
            "FIXRUNNER_PYTHON": sys.executable,  # the test venv has the runner already
            "RUNNER_PATHS__STATE_DIR": str(state_dir),
            "RUNNER_ENGINE__INSTANCE": TEST_INSTANCE,
        }
    )
    for name, value in inputs.items():
        env[f"INPUT_{name.upper()}"] = value
    (gh / "temp").mkdir()
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        env=env,
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done, gh


def test_action_without_a_patch_or_event_fails_with_an_error_verdict(
    tmp_path: Path, pr_workspace: tuple[Path, Path]
) -> None:
    workspace, _ = pr_workspace
    done, gh = run_action(tmp_path, workspace, tmp_path / "none.json", tmp_path, base="HEAD")
    assert done.returncode == 2
    assert parse_github_output((gh / "output").read_text(encoding="utf-8")) == {"verdict": "error"}
    (line,) = annotation_lines(done.stdout)
    assert parse_command(line)[0] == "error"


def test_action_escapes_a_bad_input_in_its_error(
    tmp_path: Path, pr_workspace: tuple[Path, Path]
) -> None:
    workspace, event = pr_workspace
    done, _ = run_action(tmp_path, workspace, event, tmp_path, fail_on="x\n::warning::forged")
    assert done.returncode == 2
    (line,) = annotation_lines(done.stdout)
    assert parse_command(line)[2].endswith("not 'x\n::warning::forged'")


def test_action_refuses_a_record_map_that_is_not_true_or_false(
    tmp_path: Path, pr_workspace: tuple[Path, Path]
) -> None:
    workspace, event = pr_workspace
    done, gh = run_action(tmp_path, workspace, event, tmp_path, record_map="yes")
    assert done.returncode == 2
    assert parse_github_output((gh / "output").read_text(encoding="utf-8")) == {"verdict": "error"}
    (line,) = annotation_lines(done.stdout)
    assert parse_command(line)[2] == "record-map must be 'true' or 'false', not 'yes'"


@pytest.mark.docker
def test_action_verifies_the_pull_requests_fix(
    tmp_path: Path, pr_workspace: tuple[Path, Path], state_dir: Path, base_image: object
) -> None:
    workspace, event = pr_workspace
    done, gh = run_action(tmp_path, workspace, event, state_dir)
    assert done.returncode == 0, done.stdout + done.stderr

    outputs = parse_github_output((gh / "output").read_text(encoding="utf-8"))
    assert outputs["verdict"] == "verified"
    verdict = Verdict.model_validate_json(Path(outputs["verdict-json"]).read_text("utf-8"))
    assert outputs["summary"] == verdict.summary and verdict.status == "verified"
    reports = Path(outputs["reports-dir"])
    # the candidate was the PR's own diff, base...head
    assert "test_main_seeds_inside_app_context" in (reports / "pr.diff").read_text("utf-8")

    summary = (gh / "summary.md").read_text(encoding="utf-8")
    assert "## ✅ **VERIFIED** fixrunner" in summary
    assert "| check | result | detail |" in summary
    for check in verdict.checks:
        name = check.name.replace("_", "\\_")  # Markdown-escaped: rendered as written
        assert f"| {name} | ✅ pass |" in summary
    assert "`tests/test_seed.py::test_main_seeds_inside_app_context`" in summary

    lines = annotation_lines(done.stdout)
    assert [parse_command(line)[:2] for line in lines] == [
        ("notice", {"title": "fixrunner: verified"})
    ]

    sarif = json.loads(Path(outputs["sarif"]).read_text(encoding="utf-8"))
    schema = json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(schema).validate(sarif)
    assert sarif["runs"][0]["results"] == []

    candidate = JUnitXml.fromfile(str(reports / "junit" / "candidate.xml"))
    assert sum(1 for suite in candidate for _ in suite) == 13
    baseline = JUnitXml.fromfile(str(reports / "junit" / "baseline.xml"))
    assert sum(1 for suite in baseline for _ in suite) >= 1
    # a one-shot job: no per-test map unless the record-map input asks (the next test)
    assert verdict.early is not None and verdict.early.testmap is not None
    assert not verdict.early.testmap.recorded, verdict.early.testmap


@pytest.mark.docker
def test_action_records_the_per_test_map_when_asked(
    tmp_path: Path, pr_workspace: tuple[Path, Path], state_dir: Path, base_image: object
) -> None:
    workspace, event = pr_workspace
    done, gh = run_action(tmp_path, workspace, event, state_dir, record_map="true")
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = parse_github_output((gh / "output").read_text(encoding="utf-8"))
    verdict = Verdict.model_validate_json(Path(outputs["verdict-json"]).read_text("utf-8"))
    assert verdict.status == "verified", verdict.summary
    assert verdict.early is not None and verdict.early.testmap is not None
    assert verdict.early.testmap.recorded, verdict.early.testmap
    assert "--record-map" in verdict.early.testmap.reason


@pytest.mark.docker
def test_action_with_fail_on_never_passes_a_rejected_patch_and_annotates_it(
    tmp_path: Path, pr_workspace: tuple[Path, Path], state_dir: Path, base_image: object
) -> None:
    workspace, event = pr_workspace
    patch = tmp_path / "breaks-other.diff"
    shutil.copy(EXAMPLE / "candidates" / "breaks-other.diff", patch)
    # A runner.toml the PR could add at the repository root must not configure the
    # runner: this one would make verify-patch exit 2 if it were read.
    (workspace / "runner.toml").write_text("[engine]\nbogus = 1\n", encoding="utf-8")
    done, gh = run_action(tmp_path, workspace, event, state_dir, patch=str(patch), fail_on="never")
    assert done.returncode == 0, done.stdout + done.stderr

    outputs = parse_github_output((gh / "output").read_text(encoding="utf-8"))
    assert outputs["verdict"] == "rejected"
    assert "no_regressions" in outputs["summary"]
    summary = (gh / "summary.md").read_text(encoding="utf-8")
    assert "| no\\_regressions | ❌ fail |" in summary
    assert "| `app/seed.py` | 6 | F401 |" in summary

    parsed = [parse_command(line) for line in annotation_lines(done.stdout)]
    lint = [p for p in parsed if p[1].get("title") == "flake8 F401"]
    assert lint and lint[0][:2] == (
        "error",
        {"file": "app/seed.py", "line": "6", "col": "1", "title": "flake8 F401"},
    )
    regression = [p for p in parsed if p[1].get("title", "").startswith("Regression:")]
    assert regression[0][1]["file"] == "tests/test_seed.py"
    assert int(regression[0][1]["line"]) > 0
    assert "IntegrityError" in regression[0][2]

    sarif = json.loads(Path(outputs["sarif"]).read_text(encoding="utf-8"))
    schema = json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(schema).validate(sarif)
    (result,) = sarif["runs"][0]["results"]
    assert (result["ruleId"], result["level"]) == ("F401", "error")

    reports = Path(outputs["reports-dir"])
    for side in ("baseline", "candidate"):
        JUnitXml.fromfile(str(reports / "junit" / f"{side}.xml"))
