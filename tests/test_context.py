"""Error reports and code context: from a production traceback to what the prompt shows.

Pure: real-looking tracebacks (a plain script, a Flask request, a Celery task, a Django
management command, a chained exception) against repository trees made in tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from runner.fix.context import estimate_tokens, gather_context, list_files, render_context
from runner.fix.errorreport import ErrorReport, derive_repro, report_frames

REPO_ROOT = Path(__file__).resolve().parent.parent
FLASK_REPORT = REPO_ROOT / "examples" / "flask-app-context" / "error-report.json"

FLASK_REQUEST = """\
Traceback (most recent call last):
  File "/srv/shop/.venv/lib/python3.11/site-packages/flask/app.py", line 1511, in wsgi_app
    response = self.full_dispatch_request()
  File "/srv/shop/.venv/site-packages/flask/app.py", line 919, in full_dispatch_request
    rv = self.dispatch_request()
  File "/srv/shop/shop/views.py", line 12, in show_order
    return jsonify(order_total(order_id))
  File "/srv/shop/shop/pricing.py", line 7, in order_total
    return sum(line.price for line in lines) / count
ZeroDivisionError: division by zero
"""

CELERY_TASK = """\
Traceback (most recent call last):
  File "/usr/local/lib/python3.11/site-packages/celery/app/trace.py", line 453, in trace_task
    R = retval = fun(*args, **kwargs)
  File "/app/shop/tasks.py", line 5, in send_receipt
    mailer.send(order.email)
AttributeError: 'NoneType' object has no attribute 'email'
"""

CHAINED = """\
Traceback (most recent call last):
  File "/app/shop/pricing.py", line 7, in order_total
    return sum(line.price for line in lines) / count
ZeroDivisionError: division by zero

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/shop/views.py", line 12, in show_order
    return jsonify(order_total(order_id))
ValueError: order has no lines
"""

DJANGO_COMMAND = """\
Traceback (most recent call last):
  File "/srv/site/manage.py", line 22, in <module>
    main()
  File "/srv/site/manage.py", line 18, in main
    execute_from_command_line(sys.argv)
  File "/v/site-packages/django/core/management/__init__.py", line 442, in execute_from_command_line
    utility.execute()
  File "/srv/site/shop/management/commands/import_orders.py", line 9, in handle
    raise CommandError("no orders file")
django.core.management.base.CommandError: no orders file
"""

TOP_LEVEL_SCRIPT = """\
Traceback (most recent call last):
  File "/home/deploy/shop/backfill.py", line 3, in <module>
    run()
  File "/home/deploy/shop/backfill.py", line 2, in run
    raise KeyError("sku")
KeyError: 'sku'
"""


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


SHOP = {
    "shop/__init__.py": "",
    "shop/views.py": "from shop.pricing import order_total\n\n\ndef show_order(order_id):\n"
    + "\n" * 7
    + "    return jsonify(order_total(order_id))\n",
    "shop/pricing.py": "from .models import Line\n\n\ndef order_total(order_id):\n"
    "    lines = Line.for_order(order_id)\n    count = len(lines)\n"
    "    return sum(line.price for line in lines) / count\n",
    "shop/models.py": "class Line:\n    price = 0\n",
    "shop/tasks.py": "def send_receipt(order):\n    mailer = None\n\n\n"
    "    mailer.send(order.email)\n",
    "tests/conftest.py": "import pytest\n\n\n@pytest.fixture\ndef order():\n    return 1\n",
    "tests/test_pricing.py": "from shop.pricing import order_total\n\n\n"
    "def test_total(order):\n    assert order_total(order) == 0\n",
    "tests/test_views.py": "def test_views():\n    assert True\n",
    "manage.py": "import sys\n" + "\n" * 16 + "def main():\n    pass\n\n\n\nmain()\n",
    "shop/management/commands/import_orders.py": "\n" * 8 + "raise CommandError\n",
    "backfill.py": "def run():\n    raise KeyError('sku')\nrun()\n",
    "scripts/seed.py": "print('x')\n",
}


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "shop", SHOP)


# --------------------------------------------------------------------------- the report


def test_a_bare_traceback_is_a_report_with_type_and_message_from_it() -> None:
    report = ErrorReport.from_text(FLASK_REQUEST)
    assert report.exception_type == "ZeroDivisionError"
    assert report.message == "division by zero"
    assert report.summary == "ZeroDivisionError: division by zero"


def test_the_json_report_keeps_the_traceback_exactly_as_printed() -> None:
    report = ErrorReport.from_text(FLASK_REPORT.read_text(encoding="utf-8"))
    assert report.traceback.startswith("Traceback (most recent call last):\n  File ")
    assert report.short_type == "RuntimeError"
    assert report.message.startswith("Working outside of application context.")
    assert report.environment is not None and report.environment.packages["Flask"] == "3.1.3"


def test_text_without_a_traceback_is_not_a_report() -> None:
    with pytest.raises(ValidationError, match="no Python traceback"):
        ErrorReport.from_text("it crashed, please fix")


def test_secret_request_headers_are_dropped_on_input() -> None:
    report = ErrorReport.model_validate(
        {
            "traceback": FLASK_REQUEST,
            "request": {
                "method": "GET",
                "path": "/orders/7",
                "headers": {
                    "Authorization": "Bearer s3cr3t",
                    "Cookie": "session=abc",
                    "X-Api-Key": "k",
                    "X-CSRF-Token": "t",
                    "Accept": "application/json",
                    "User-Agent": "curl/8",
                },
            },
        }
    )
    assert report.request is not None
    assert report.request.headers == {"Accept": "application/json", "User-Agent": "curl/8"}
    assert "s3cr3t" not in report.model_dump_json()


# --------------------------------------------------------------------------- frames


def test_frames_map_deployment_paths_to_repository_files_and_skip_installed_code(
    shop: Path,
) -> None:
    frames = report_frames(ErrorReport.from_text(FLASK_REQUEST), set(list_files(shop)))
    assert [(f.repo_path, f.frame.line) for f in frames] == [
        ("shop/views.py", 12),
        ("shop/pricing.py", 7),
    ]


def test_frames_of_a_chained_exception_are_kept(shop: Path) -> None:
    frames = report_frames(ErrorReport.from_text(CHAINED), set(list_files(shop)))
    assert [f.repo_path for f in frames] == ["shop/views.py", "shop/pricing.py"]


# --------------------------------------------------------------------------- repro


def test_a_script_under_scripts_gives_the_repro_command_and_expected_error() -> None:
    report = ErrorReport.from_text(FLASK_REPORT.read_text(encoding="utf-8"))
    files = {"scripts/seed_db.py", "app/seed.py", "app/__init__.py"}
    repro = derive_repro(report, files)
    assert repro is not None
    assert repro.command == "python scripts/seed_db.py"
    assert repro.expect_error == "RuntimeError: Working outside of application context."


def test_a_top_level_script_gives_a_repro_command(shop: Path) -> None:
    repro = derive_repro(ErrorReport.from_text(TOP_LEVEL_SCRIPT), set(list_files(shop)))
    assert repro is not None
    assert (repro.command, repro.expect_error) == ("python backfill.py", "KeyError: 'sku'")


@pytest.mark.parametrize("traceback", [FLASK_REQUEST, CELERY_TASK, CHAINED])
def test_code_run_by_a_server_or_worker_gives_no_repro_command(shop: Path, traceback: str) -> None:
    assert derive_repro(ErrorReport.from_text(traceback), set(list_files(shop))) is None


def test_manage_py_needs_its_command_line_to_be_a_repro(shop: Path) -> None:
    files = set(list_files(shop))
    assert derive_repro(ErrorReport.from_text(DJANGO_COMMAND), files) is None
    report = ErrorReport(
        traceback=DJANGO_COMMAND, argv=["manage.py", "import_orders", "--file", "a b.csv"]
    )
    repro = derive_repro(report, files)
    assert repro is not None
    assert repro.command == "python manage.py import_orders --file 'a b.csv'"
    assert repro.expect_error == "CommandError: no orders file"


# --------------------------------------------------------------------------- context


def test_context_shows_frame_code_with_line_numbers_then_tests_and_imports(shop: Path) -> None:
    context = gather_context(shop, ErrorReport.from_text(FLASK_REQUEST), 10_000)
    kinds = [(s.path, s.kind) for s in context.snippets]
    # innermost frame first, then the test example with its conftest, then imports
    assert kinds == [
        ("shop/pricing.py", "frame"),
        ("shop/views.py", "frame"),
        ("tests/conftest.py", "conftest"),
        ("tests/test_pricing.py", "test-example"),
        ("shop/models.py", "import"),
    ]
    text = render_context(context)
    assert "    7      return sum(line.price for line in lines) / count" in text
    assert "shop/pricing.py lines 1-7 [frame] (traceback: line 7 in order_total)" in text
    assert "tests/" in context.test_layout and "tests/conftest.py" in context.test_layout
    assert "manage.py" in context.tree
    assert context.omitted == []


def test_a_long_file_shows_the_whole_short_function_and_the_import_block(tmp_path: Path) -> None:
    body = ["import os", "from shop import models", "", ""]
    body += [f"def filler_{i}():\n    return {i}\n\n" for i in range(80)]
    body += ["def broken(x):", "    y = x + 1", "    return y / 0", ""]
    text = "\n".join(body)
    tree = make_tree(tmp_path / "t", {"shop/big.py": text, "shop/models.py": "X = 1\n"})
    line = text.splitlines().index("    return y / 0") + 1
    tb = (
        "Traceback (most recent call last):\n"
        f'  File "/app/shop/big.py", line {line}, in broken\n'
        "    return y / 0\nZeroDivisionError: division by zero\n"
    )
    context = gather_context(tree, ErrorReport.from_text(tb), 10_000)
    frames = [s for s in context.snippets if s.kind == "frame"]
    assert [(s.start, s.end) for s in frames] == [(1, 2), (line - 2, line)]
    assert "def broken(x):" in frames[1].text
    assert [s.path for s in context.snippets if s.kind == "import"] == ["shop/models.py"]


def test_a_long_function_shows_a_window_around_the_line(tmp_path: Path) -> None:
    lines = (
        ["def huge():"] + [f"    v{i} = {i}" for i in range(300)] + ["    raise ValueError('x')"]
    )
    tree = make_tree(tmp_path / "t", {"huge.py": "\n".join(lines) + "\n"})
    tb = (
        "Traceback (most recent call last):\n"
        '  File "/app/huge.py", line 302, in huge\n'
        "    raise ValueError('x')\nValueError: x\n"
    )
    (snippet,) = gather_context(tree, ErrorReport.from_text(tb), 10_000).snippets
    assert (snippet.start, snippet.end) == (302 - 25, 302)


def test_the_budget_bounds_the_context_and_names_what_was_left_out(shop: Path) -> None:
    report = ErrorReport.from_text(FLASK_REQUEST)
    full = gather_context(shop, report, 10_000)
    small = gather_context(shop, report, 220)
    assert small.tokens <= 220 < full.tokens
    assert small.snippets and small.snippets[0].path == "shop/pricing.py"
    assert small.omitted
    assert estimate_tokens("abcd" * 10) == 10


def test_a_symlink_out_of_the_tree_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("TOP-SECRET-HOST-FILE\n", encoding="utf-8")
    tree = make_tree(tmp_path / "t", {"app/__init__.py": ""})
    (tree / "app" / "main.py").symlink_to(secret)
    tb = (
        "Traceback (most recent call last):\n"
        '  File "/srv/x/app/main.py", line 1, in <module>\n    boom()\nNameError: boom\n'
    )
    context = gather_context(tree, ErrorReport.from_text(tb), 10_000)
    assert "TOP-SECRET-HOST-FILE" not in json.dumps(context.model_dump())
    assert "app/main.py" not in list_files(tree)
