"""A loopback server that speaks GitHub's REST API for pull requests, for PyGithub to talk to.

GitHub is out of reach here; like tests/anthropic_fake.py this is the one stand-in for it:
a real HTTP server on 127.0.0.1 in a thread. It answers the requests a draft PR needs,
with GitHub's shapes and status codes: ``GET/POST /repos/{o}/{r}/pulls``,
``PATCH /repos/{o}/{r}/pulls/{n}``, ``POST /repos/{o}/{r}/issues/{n}/labels``. The token
is checked (``Authorization: token|Bearer …``, else 401 Bad credentials); a PR's head
must be a branch of the real bare repository behind it (else 422, as GitHub says when
the branch was never pushed); a second open PR for one head is 422. Every request is
recorded for the test; ``fail_next`` answers the next request of a method with an error.

Also runnable for ``make demo-pr``:
``python tests/github_fake.py --repo owner/name --remote BARE --token T --port-file FILE``.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

DOCS = "https://docs.github.com/rest"


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGitHub:
    """The server, its pull requests and what it saw."""

    repo: str
    remote: Path
    token: str
    pulls: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    fail_next: list[tuple[str, int, str]] = field(default_factory=list)  # method, status, message
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeGitHub:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ the API

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        url = urlsplit(target)
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return 400, {"message": "Problems parsing JSON", "documentation_url": DOCS}
        with self.lock:
            self.requests.append(Seen(method, target, headers, body))
            auth = headers.get("authorization", "")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() not in ("token", "bearer") or given != self.token:
                return 401, {"message": "Bad credentials", "documentation_url": DOCS}
            if self.fail_next and self.fail_next[0][0] == method:
                _, status, message = self.fail_next.pop(0)
                return status, {"message": message, "documentation_url": DOCS}
            prefix = f"/repos/{self.repo}/"
            if not url.path.startswith(prefix):
                return 404, {"message": "Not Found", "documentation_url": DOCS}
            rest = url.path[len(prefix) :].strip("/").split("/")
            return self._route(method, rest, parse_qs(url.query), body)

    def _route(
        self, method: str, rest: list[str], query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        if rest == ["pulls"] and method == "GET":
            state = query.get("state", ["open"])[0]
            base = query.get("base", [None])[0]
            found = [
                p
                for p in self.pulls
                if (state == "all" or p["state"] == state) and base in (None, p["base"]["ref"])
            ]
            return 200, found
        if rest == ["pulls"] and method == "POST":
            return self._create(body)
        if len(rest) == 2 and rest[0] == "pulls" and method in ("GET", "PATCH"):
            pull = self._pull(rest[1])
            if pull is None:
                return 404, {"message": "Not Found", "documentation_url": DOCS}
            if method == "PATCH":
                for key in ("title", "body", "state"):
                    if isinstance(body, dict) and key in body:
                        pull[key] = body[key]
            return 200, pull
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "labels" and method == "POST":
            pull = self._pull(rest[1])
            if pull is None:
                return 404, {"message": "Not Found", "documentation_url": DOCS}
            names = body.get("labels") if isinstance(body, dict) else body
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                return 422, _invalid("Label", "invalid", "labels must be a list of names")
            for name in names:
                if name not in [label["name"] for label in pull["labels"]]:
                    pull["labels"].append({"name": name, "color": "ededed"})
            return 200, pull["labels"]
        return 404, {"message": "Not Found", "documentation_url": DOCS}

    def _pull(self, number: str) -> dict[str, Any] | None:
        return next((p for p in self.pulls if str(p["number"]) == number), None)

    def _create(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, {"message": "Problems parsing JSON", "documentation_url": DOCS}
        for name in ("title", "head", "base"):
            if not isinstance(body.get(name), str) or not body[name]:
                return 422, _invalid("PullRequest", "missing_field", f"{name} is missing")
        head, base = body["head"], body["base"]
        if not self._branch_exists(head):
            return 422, _invalid("PullRequest", "invalid", "head", field_name="head")
        if not self._branch_exists(base):
            return 422, _invalid("PullRequest", "invalid", "base", field_name="base")
        owner = self.repo.split("/")[0]
        for pull in self.pulls:
            if pull["state"] == "open" and pull["head"]["ref"] == head:
                message = f"A pull request already exists for {owner}:{head}."
                return 422, _invalid("PullRequest", "custom", message)
        number = len(self.pulls) + 1
        api = f"{self.base_url}/repos/{self.repo}"
        pull = {
            "id": 1000 + number,
            "number": number,
            "state": "open",
            "draft": bool(body.get("draft", False)),
            "title": body["title"],
            "body": body.get("body"),
            "url": f"{api}/pulls/{number}",
            "issue_url": f"{api}/issues/{number}",
            "html_url": f"https://github.com/{self.repo}/pull/{number}",
            "head": {"ref": head, "label": f"{owner}:{head}", "sha": self._sha(head)},
            "base": {"ref": base, "label": f"{owner}:{base}", "sha": self._sha(base)},
            "labels": [],
            "user": {"login": "fixrunner", "id": 1, "type": "Bot"},
        }
        self.pulls.append(pull)
        return 201, pull

    def _sha(self, branch: str) -> str:
        done = subprocess.run(
            ["git", "--git-dir", str(self.remote), "rev-parse", "--verify", "--quiet",
             f"refs/heads/{branch}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return done.stdout.strip()

    def _branch_exists(self, branch: str) -> bool:
        return bool(self._sha(branch))


def _invalid(
    resource: str, code: str, message: str, field_name: str | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"resource": resource, "code": code}
    if field_name:
        error["field"] = field_name
    else:
        error["message"] = message
    return {"message": "Validation Failed", "errors": [error], "documentation_url": DOCS}


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = fake.handle(self.command, self.path, headers, raw)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM; write the port to --port-file, the PRs to --dump on exit."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", required=True, help="owner/name")
    parser.add_argument("--remote", required=True, type=Path, help="the bare repository")
    parser.add_argument("--token", required=True)
    parser.add_argument("--port-file", required=True, type=Path)
    parser.add_argument("--dump", type=Path, help="write the pull requests here on exit")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeGitHub(args.repo, args.remote, args.token) as fake:
        args.port_file.write_text(str(fake.base_url.rsplit(":", 1)[1]), encoding="utf-8")
        stop.wait()
        if args.dump:
            args.dump.write_text(json.dumps(fake.pulls, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
