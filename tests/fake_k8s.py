"""A stand-in Kubernetes API on 127.0.0.1: TrainJobs (create, get, watch, delete), pods, logs.

Enough of the API server's HTTP behaviour for the real `kubernetes` client that the launcher
uses: JSON bodies, Status errors, watch streams of JSON lines, followed logs. What the Trainer
controller would do with a TrainJob is up to the test (`on_create`). Not a cluster.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TRAINJOBS = re.compile(
    r"^/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/([^/]+)/trainjobs(?:/([^/]+))?$"
)
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
POD_LOG = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")


class FakeKubernetes:
    """The API's state; tests read `requests` and drive jobs, pods and logs."""

    def __init__(self, on_create: Callable[[FakeKubernetes, dict], None] | None = None):
        self.on_create = on_create
        self.trainjobs: dict[str, dict] = {}
        self.pods: dict[str, dict] = {}
        self.logs: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, query)
        self.events: list[tuple[int, str, dict]] = []  # (resource version, type, object)
        self._version = 0
        self._changed = threading.Condition()
        self.server: ThreadingHTTPServer | None = None

    # --- what a controller would do ---------------------------------------------------------
    def _bump(self) -> str:
        self._version += 1
        return str(self._version)

    def _event(self, kind: str, job: dict) -> None:
        with self._changed:
            job["metadata"]["resourceVersion"] = self._bump()
            self.events.append((self._version, kind, json.loads(json.dumps(job))))
            self._changed.notify_all()

    def set_condition(self, name: str, kind: str, message: str = "") -> None:
        """Mark TrainJob `name` Complete or Failed, as the Trainer controller does."""
        job = self.trainjobs[name]
        conditions = job.setdefault("status", {}).setdefault("conditions", [])
        conditions.append(
            {"type": kind, "status": "True", "reason": kind, "message": message,
             "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        )  # fmt: skip
        self._event("MODIFIED", job)

    def add_pod(self, name: str, labels: dict[str, str], phase: str = "Running") -> None:
        with self._changed:
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self.pods[name] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "uid": str(uuid.uuid4()), "labels": labels,
                             "creationTimestamp": created, "resourceVersion": self._bump()},
                "status": {"phase": phase},
            }  # fmt: skip
            self.logs.setdefault(name, [])
            self._changed.notify_all()

    def log(self, pod: str, line: str) -> None:
        with self._changed:
            self.logs[pod].append(line)
            self._changed.notify_all()

    def end_pod(self, pod: str, phase: str = "Succeeded") -> None:
        with self._changed:
            self.pods[pod]["status"]["phase"] = phase
            self._changed.notify_all()

    def calls(self, method: str, suffix: str = "") -> list[tuple[str, str, dict]]:
        return [r for r in self.requests if r[0] == method and r[1].endswith(suffix)]

    # --- serving -------------------------------------------------------------------------------
    def __enter__(self) -> FakeKubernetes:
        fake = self

        class Handler(_Handler):
            state = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def api_client(self):
        """A real `kubernetes` ApiClient pointed at this server."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)


def _matches(labels: dict[str, str], selector: str) -> bool:
    wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
    return all(labels.get(k) == v for k, v in wanted.items())


class _Handler(BaseHTTPRequestHandler):
    state: FakeKubernetes
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as the client expects

    def log_message(self, *args) -> None:  # quiet test output
        pass

    def _route(self) -> tuple[str, dict]:
        parsed = urllib.parse.urlparse(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        self.state.requests.append((self.command, parsed.path, query))
        return parsed.path, query

    def _json(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str) -> None:
        self._json(
            code,
            {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
             "reason": reason, "message": message},
        )  # fmt: skip

    def do_POST(self) -> None:
        path, _ = self._route()
        match = TRAINJOBS.match(path)
        if not match or match.group(2):
            return self._status(404, "NotFound", path)
        job = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = job["metadata"]["name"]
        state = self.state
        if name in state.trainjobs:
            return self._status(409, "AlreadyExists", f'trainjobs "{name}" already exists')
        job["metadata"].update(
            namespace=match.group(1), uid=str(uuid.uuid4()),
            creationTimestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )  # fmt: skip
        state.trainjobs[name] = job
        state._event("ADDED", job)
        self._json(201, job)
        if state.on_create:
            threading.Thread(target=state.on_create, args=(state, job), daemon=True).start()

    def do_DELETE(self) -> None:
        path, _ = self._route()
        match = TRAINJOBS.match(path)
        name = match.group(2) if match else None
        if name not in self.state.trainjobs:
            return self._status(404, "NotFound", f'trainjobs "{name}" not found')
        job = self.state.trainjobs.pop(name)
        self.state._event("DELETED", job)
        self._json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def do_GET(self) -> None:
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):  # the client hung up mid-stream
            self.close_connection = True

    def _get(self) -> None:
        path, query = self._route()
        if match := TRAINJOBS.match(path):
            name = match.group(2)
            if name:
                job = self.state.trainjobs.get(name)
                return self._json(200, job) if job else self._status(404, "NotFound", name)
            if query.get("watch", "").lower() == "true":
                return self._watch(query)
            return self._json(
                200,
                {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJobList",
                 "metadata": {"resourceVersion": str(self.state._version)},
                 "items": list(self.state.trainjobs.values())},
            )  # fmt: skip
        if match := PODS.match(path):
            selector = query.get("labelSelector", "")
            items = [
                p for p in self.state.pods.values() if _matches(p["metadata"]["labels"], selector)
            ]
            return self._json(200, {"apiVersion": "v1", "kind": "PodList", "items": items})
        if match := POD_LOG.match(path):
            return self._follow_log(match.group(2), query.get("follow", "").lower() == "true")
        self._status(404, "NotFound", path)

    def _stream_start(self, content_type: str) -> None:
        # chunked, as the API server sends watches and followed logs: each line arrives now
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stream_end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _watch(self, query: dict) -> None:
        """Events after `resourceVersion` for the named job, until `timeoutSeconds` pass."""
        name = query.get("fieldSelector", "").removeprefix("metadata.name=")
        after = int(query.get("resourceVersion") or 0)
        deadline = time.monotonic() + float(query.get("timeoutSeconds", 30))
        self._stream_start("application/json")
        state, sent = self.state, after
        while time.monotonic() < deadline and not getattr(state, "_closing", False):
            with state._changed:
                pending = [
                    e for e in state.events if e[0] > sent and e[2]["metadata"]["name"] == name
                ]
                if not pending:
                    state._changed.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                    continue
            for version, kind, obj in pending:
                self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                sent = version
        self._stream_end()

    def _follow_log(self, pod: str, follow: bool) -> None:
        state = self.state
        if pod not in state.pods:
            return self._status(404, "NotFound", f'pods "{pod}" not found')
        self._stream_start("text/plain")
        written = 0
        while True:
            with state._changed:
                lines = state.logs[pod][written:]
                ended = state.pods[pod]["status"]["phase"] in ("Succeeded", "Failed")
                if not lines and (ended or not follow or getattr(state, "_closing", False)):
                    return self._stream_end()
                if not lines:
                    state._changed.wait(0.5)
                    continue
            self._chunk("".join(line + "\n" for line in lines).encode())
            written += len(lines)
