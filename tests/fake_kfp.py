"""A stand-in Kubeflow Pipelines API on 127.0.0.1 for contract tests (not a cluster).

It speaks the few v2beta1 REST endpoints segpipe's commands use, answers with bodies built
from the `kfp-server-api` models (so the real kfp.Client deserializes them), and records
every request it gets so tests can assert what the SDK sent.
"""

from __future__ import annotations

import datetime
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import kfp_server_api as api

PREFIX = "/apis/v2beta1"
CREATED = datetime.datetime(2026, 5, 4, 3, 0, 0, tzinfo=datetime.UTC)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict | None
    raw: str


@dataclass
class FakeKfp:
    """The server's state: experiments, runs and recurring runs it holds, and the requests seen."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    experiments: dict[str, api.V2beta1Experiment] = field(default_factory=dict)
    runs: dict[str, api.V2beta1Run] = field(default_factory=dict)
    recurring: dict[str, api.V2beta1RecurringRun] = field(default_factory=dict)

    def calls(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == PREFIX + path]

    def add_experiment(self, name: str, namespace: str | None = None) -> str:
        experiment_id = f"exp-{uuid.uuid4().hex[:8]}"
        self.experiments[experiment_id] = api.V2beta1Experiment(
            experiment_id=experiment_id, display_name=name, namespace=namespace, created_at=CREATED
        )
        return experiment_id

    def add_run(self, name: str, state: str, experiment_id: str) -> str:
        run_id = f"run-{uuid.uuid4().hex[:8]}"
        self.runs[run_id] = api.V2beta1Run(
            run_id=run_id,
            display_name=name,
            state=state,
            experiment_id=experiment_id,
            created_at=CREATED,
        )
        return run_id


def _display_name_filter(query: dict[str, list[str]]) -> str | None:
    """The display_name an EQUALS filter asks for, as kfp.Client encodes it."""
    if "filter" not in query:
        return None
    for predicate in json.loads(query["filter"][0]).get("predicates", []):
        if predicate.get("key") == "display_name":
            return predicate.get("string_value", predicate.get("stringValue"))
    return None


def _handler(state: FakeKfp) -> type[BaseHTTPRequestHandler]:
    serializer = api.ApiClient()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _reply(self, status: int, model=None) -> None:
            payload = json.dumps(serializer.sanitize_for_serialization(model) or {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _not_found(self, what: str) -> None:
            self._reply(404, api.GoogleRpcStatus(code=5, message=f"{what} not found"))

        def _record(self) -> Request:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(raw) if raw else None,
                raw=raw,
            )
            state.requests.append(request)
            return request

        def do_GET(self) -> None:
            request = self._record()
            path, query = request.path, request.query
            if path == PREFIX + "/healthz":
                self._reply(200, api.V2beta1GetHealthzResponse(multi_user=False))
            elif path == PREFIX + "/experiments":
                name = _display_name_filter(query)
                found = [e for e in state.experiments.values() if name in (None, e.display_name)]
                self._reply(200, api.V2beta1ListExperimentsResponse(experiments=found or None))
            elif path == PREFIX + "/runs":
                runs = list(state.runs.values())
                if "experiment_id" in query:
                    runs = [r for r in runs if r.experiment_id == query["experiment_id"][0]]
                size = int(query.get("page_size", ["10"])[0])
                self._reply(200, api.V2beta1ListRunsResponse(runs=runs[:size] or None))
            elif path == PREFIX + "/recurringruns":
                jobs = list(state.recurring.values())
                if "experiment_id" in query:
                    jobs = [j for j in jobs if j.experiment_id == query["experiment_id"][0]]
                self._reply(200, api.V2beta1ListRecurringRunsResponse(recurring_runs=jobs or None))
            else:
                self._not_found(path)

        def do_POST(self) -> None:
            request = self._record()
            body = request.body or {}
            if request.path == PREFIX + "/experiments":
                experiment_id = state.add_experiment(body["display_name"], body.get("namespace"))
                self._reply(200, state.experiments[experiment_id])
            elif request.path == PREFIX + "/runs":
                run_id = state.add_run(body["display_name"], "PENDING", body["experiment_id"])
                self._reply(200, state.runs[run_id])
            elif request.path == PREFIX + "/recurringruns":
                job_id = f"job-{uuid.uuid4().hex[:8]}"
                trigger = body.get("trigger", {})
                cron = trigger.get("cron_schedule", {}).get("cron")
                state.recurring[job_id] = api.V2beta1RecurringRun(
                    recurring_run_id=job_id,
                    display_name=body["display_name"],
                    experiment_id=body["experiment_id"],
                    max_concurrency=body.get("max_concurrency"),
                    no_catchup=body.get("no_catchup"),
                    mode=body.get("mode"),
                    status="ENABLED" if body.get("mode") == "ENABLE" else "DISABLED",
                    trigger=api.V2beta1Trigger(cron_schedule=api.V2beta1CronSchedule(cron=cron)),
                    created_at=CREATED,
                )
                self._reply(200, state.recurring[job_id])
            else:
                self._not_found(request.path)

        def do_DELETE(self) -> None:
            request = self._record()
            job_id = request.path.removeprefix(PREFIX + "/recurringruns/")
            if job_id in state.recurring:
                del state.recurring[job_id]
                self._reply(200)
            else:
                self._not_found(f"recurring run {job_id}")

    return Handler


class FakeKfpServer:
    """Serve a FakeKfp on an ephemeral 127.0.0.1 port in a daemon thread."""

    def __init__(self) -> None:
        self.state = FakeKfp()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.state.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKfp:
        self._thread.start()
        return self.state

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
