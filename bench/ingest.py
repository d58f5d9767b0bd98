"""OTLP ingest throughput: ``kpiloop serve`` vs a no-op floor sink, over gRPC and HTTP/protobuf.

Pre-serialized ``ExportTraceServiceRequest`` batches of 1, 10, 100 and 512 plan-format spans (every
third an API call, the rest tool calls, over 1,000 sessions) are sent at concurrency 16 to

- the *floor*: the fastest Python stacks doing the least a receiver must do — raw asyncio + httptools
  for HTTP, grpcio (generic handler, raw bytes) for gRPC — parsing each request and turning every
  span into a Python object (name, times, attribute dict), then discarding it;
- a real ``kpiloop serve`` (whole pipeline: decode, adapt, queue, session processor, metrics).

Both servers run at once, pinned to one core (``taskset``), idle while the other is measured; each
(protocol, size) is measured on the floor then on kpiloop, back to back. The load generator runs in
separate processes pinned to the other core(s): asyncio raw sockets with keep-alive (HTTP) and
grpc.aio (gRPC), pre-serialized bodies. kpiloop's spans/s count what it *processed*:
``kpiloop_received_items_total`` minus ``kpiloop_queue_depth``, scraped at both ends of the window;
2xx answers are counted too. The full run adds an open-loop run per protocol at 80 % of kpiloop's
measured max rate (100 spans/request) for 60 s: nothing lost, no 5xx, backlog drained within 5 s.

Prints one JSON line per measurement and a table.
Usage: ``python bench/ingest.py [--quick] [--seconds 10] [--sizes 1,10,100,512] [--clients 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRACES_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SECOND = 1_000_000_000
SESSIONS = 1_000
POOL = 32  # distinct pre-serialized requests per size, sent in turn
TOOLS = ("Read", "Edit", "Write", "Bash", "Grep", "TaskCreate", "TaskUpdate")
CONCURRENCY = 16
OPEN_LOOP_SIZE = 100
OPEN_LOOP_SHARE = 0.8
DRAIN_LIMIT_S = 5.0
MAX_SAMPLES = 50_000


# ---------------------------------------------------------------- payloads


def request_bytes(spans: int, first: int) -> bytes:
    """One serialized ``ExportTraceServiceRequest`` of ``spans`` plan-format spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Status

    rng = random.Random(first)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _put(resource_spans.resource.attributes, {"service.name": "bench-agent-runner", "agent.type": "bench-agent"})
    scope = resource_spans.scope_spans.add()
    for index in range(first, first + spans):
        span = scope.spans.add()
        span.trace_id = index.to_bytes(16, "big")
        span.span_id = (index + 1).to_bytes(8, "big")
        span.start_time_unix_nano = 1_770_000_000 * SECOND + index * SECOND
        span.end_time_unix_nano = span.start_time_unix_nano + rng.randint(1, 30) * SECOND
        span.status.code = Status.STATUS_CODE_OK
        attrs: dict[str, object] = {"session.id": f"bench-{index % SESSIONS:04d}"}
        if index % 3 == 0:
            span.name = "hook:token-metrics-extraction"
            attrs |= {"tokens.input": rng.randint(1_000, 9_000), "tokens.output": rng.randint(100, 3_000)}
            attrs |= {"tokens.cache_read": rng.randint(10_000, 90_000), "tokens.model": "claude-sonnet-4-5"}
        else:
            span.name = "hook:builtin-post-tool"
            attrs |= {"builtin.tool": rng.choice(TOOLS), "builtin.success": rng.random() > 0.03}
        _put(span.attributes, attrs)
    data: bytes = request.SerializeToString()
    return data


def _put(target: Any, attrs: dict[str, object]) -> None:
    for key, value in attrs.items():
        pair = target.add()
        pair.key = key
        if isinstance(value, bool):
            pair.value.bool_value = value
        elif isinstance(value, int):
            pair.value.int_value = value
        else:
            pair.value.string_value = str(value)


def write_pool(path: Path, spans: int) -> None:
    """``POOL`` requests of ``spans`` spans, length-prefixed, for the load generators."""
    with open(path, "wb") as handle:
        for n in range(POOL):
            body = request_bytes(spans, n * spans)
            handle.write(len(body).to_bytes(4, "big") + body)


def read_pool(path: Path) -> list[bytes]:
    data, bodies, at = path.read_bytes(), [], 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        bodies.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return bodies


# ---------------------------------------------------------------- floor server (child process)


class FloorSpan:
    """What the floor makes of a span: a Python object, then dropped."""

    __slots__ = ("attributes", "end", "name", "start")

    def __init__(self, name: str, start: int, end: int, attributes: dict[str, Any]) -> None:
        self.name, self.start, self.end, self.attributes = name, start, end, attributes


def floor_decode(body: bytes) -> int:
    """Parse a request and make every span a Python object; return the span count."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    count = 0
    for resource_spans in request.resource_spans:
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                attrs = {
                    kv.key: getattr(kv.value, kv.value.WhichOneof("value") or "string_value") for kv in span.attributes
                }
                FloorSpan(span.name, span.start_time_unix_nano, span.end_time_unix_nano, attrs)
                count += 1
    return count


class FloorHttp(asyncio.Protocol):
    """HTTP/1.1 keep-alive, httptools parsing, 200 with an empty protobuf response."""

    REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpRequestParser(self)
        self._body: list[bytes] = []
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        floor_decode(b"".join(self._body))
        self._body = []
        assert self._transport is not None
        self._transport.write(self.REPLY)


def serve_floor(http_port: int, grpc_port: int) -> None:
    """Run both floor servers until SIGTERM (gRPC on its threads, HTTP on the main loop)."""
    import grpc

    def export(request: bytes, context: Any) -> bytes:
        floor_decode(request)
        return b""

    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(export)
    service = grpc.method_handlers_generic_handler(TRACES_PATH.split("/")[1], {"Export": handler})
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((service,))
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    server.start()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(loop.create_server(FloorHttp, "127.0.0.1", http_port, backlog=512))
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_forever()
    server.stop(0)


# ---------------------------------------------------------------- load generator (child process)


@dataclass
class Tally:
    """What one client process saw in its measured window."""

    requests: int = 0
    ok: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def record(self, status: str, latency: float, measuring: bool) -> None:
        if not measuring:
            return
        self.requests += 1
        self.ok += status in ("200", "OK")
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if len(self.latencies) < MAX_SAMPLES:
            self.latencies.append(latency)
        elif random.random() < MAX_SAMPLES / self.requests:
            self.latencies[random.randrange(MAX_SAMPLES)] = latency


class HttpConn(asyncio.Protocol):
    """A keep-alive client connection that awaits one response per request."""

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_complete(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(self._parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(0)

    async def send(self, head: bytes, body: bytes) -> int:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(head + body)
        return await self._waiter


class HttpSender:
    def __init__(self, port: int) -> None:
        self._port = port
        self._conn: HttpConn | None = None

    async def send(self, body: bytes) -> str:
        if self._conn is None or self._conn.transport is None or self._conn.transport.is_closing():
            loop = asyncio.get_running_loop()
            _, self._conn = await loop.create_connection(HttpConn, "127.0.0.1", self._port)
        head = (
            b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        return str(await self._conn.send(head, body))


class GrpcSender:
    def __init__(self, call: Any) -> None:
        self._call = call

    async def send(self, body: bytes) -> str:
        import grpc

        try:
            await self._call(body, timeout=30)
            return "OK"
        except grpc.aio.AioRpcError as error:
            return str(error.code().name)


async def run_client(opts: dict[str, Any]) -> dict[str, Any]:
    """Closed loop (``rate`` 0: each worker sends as soon as its last answer came) or open loop."""
    import grpc

    bodies = read_pool(Path(opts["pool"]))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{opts['port']}") if opts["protocol"] == "grpc" else None
    tally, state = Tally(), {"measuring": False}
    workers = opts["workers"]
    senders: list[Any] = [
        GrpcSender(channel.unary_unary(TRACES_PATH)) if channel is not None else HttpSender(opts["port"])
        for _ in range(workers)
    ]
    schedule: asyncio.Queue[float] = asyncio.Queue()

    async def worker(sender: Any, offset: int) -> None:
        turn = offset
        while True:
            due = await schedule.get() if opts["rate"] else time.perf_counter()
            if due < 0:
                return
            status = await sender.send(bodies[turn % len(bodies)])
            turn += 1
            tally.record(status, time.perf_counter() - due, bool(state["measuring"]))

    tasks = [asyncio.create_task(worker(s, i * 7)) for i, s in enumerate(senders)]
    warm_end = time.perf_counter() + opts["warmup"]
    end = warm_end + opts["seconds"]
    await _pace(opts["rate"], schedule, warm_end, end, state)
    window = (time.monotonic() - opts["seconds"], time.monotonic())
    if opts["rate"]:
        for _ in tasks:
            schedule.put_nowait(-1.0)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    else:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if channel is not None:
        await channel.close()
    usage = os.times()
    return {
        "requests": tally.requests,
        "ok": tally.ok,
        "statuses": tally.statuses,
        "latencies": tally.latencies,
        "window": window,
        "cpu_s": usage.user + usage.system,
    }


async def _pace(rate: float, schedule: asyncio.Queue[float], warm_end: float, end: float, state: dict) -> None:
    """Closed loop: wait. Open loop: put one due time per request on ``schedule`` at ``rate``/s."""
    if not rate:
        await asyncio.sleep(max(0.0, warm_end - time.perf_counter()))
        state["measuring"] = True
        print("WARM", flush=True)
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        state["measuring"] = False
        print("DONE", flush=True)
        return
    state["measuring"] = True
    print("WARM", flush=True)
    started, sent = time.perf_counter(), 0
    while (now := time.perf_counter()) < end:
        due_count = int((now - started) * rate)
        for n in range(sent, due_count):
            schedule.put_nowait(started + n / rate)
        sent = max(sent, due_count)
        await asyncio.sleep(0.001)
    print("DONE", flush=True)


def client_main(opts: dict[str, Any]) -> None:
    result = asyncio.run(run_client(opts))
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------- orchestration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cores() -> tuple[list[str], list[str]]:
    """taskset prefixes for the server and the load generator (empty without taskset or 1 core)."""
    count = os.cpu_count() or 1
    if count < 2 or shutil.which("taskset") is None:
        return [], []
    return ["taskset", "-c", str(count - 1)], ["taskset", "-c", ",".join(str(c) for c in range(count - 1))]


@dataclass
class Servers:
    floor: subprocess.Popen[bytes]
    kpiloop: subprocess.Popen[bytes]
    ports: dict[str, int]
    data_dir: Path

    def stop(self) -> None:
        for proc in (self.floor, self.kpiloop):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self.floor, self.kpiloop):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def start_servers(pin: list[str], workdir: Path) -> Servers:
    names = ("floor_http", "floor_grpc", "http", "grpc", "prometheus")
    ports = {name: free_port() for name in names}
    floor = subprocess.Popen(
        [*pin, sys.executable, __file__, "--serve-floor", str(ports["floor_http"]), str(ports["floor_grpc"])]
    )
    data_dir = workdir / "data"
    serve = [sys.executable, "-m", "kpiloop", "serve", "--data-dir", str(data_dir)]
    serve += ["--otlp-grpc", f"127.0.0.1:{ports['grpc']}", "--otlp-http", f"127.0.0.1:{ports['http']}"]
    serve += ["--prometheus", f"127.0.0.1:{ports['prometheus']}"]
    kpiloop = subprocess.Popen([*pin, *serve], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers = Servers(floor, kpiloop, ports, data_dir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(_listening(ports[n]) for n in names) and _scrape(ports["prometheus"]) is not None:
            return servers
        time.sleep(0.2)
    servers.stop()
    raise SystemExit("servers did not start within 30 s")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _scrape(port: int) -> dict[str, float] | None:
    """kpiloop's traces received, refused and queue depth from /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    found = {"received": 0.0, "refused": 0.0, "depth": 0.0}
    for line in text.splitlines():
        if line.startswith("kpiloop_received_items_total{") and 'signal="traces"' in line:
            found["received"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("kpiloop_refused_items_total{") and 'signal="traces"' in line:
            found["refused"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("kpiloop_queue_depth"):
            found["depth"] = float(line.rsplit(" ", 1)[1])
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    protocol: str
    server: str
    spans: int
    seconds: float
    rate: float = 0.0  # requests/s for an open-loop run, 0 for closed loop


def measure(run: Run, servers: Servers, pool: Path, client_pin: list[str], clients: int) -> dict[str, Any]:
    """One measurement: clients against one server; counts, rates, latency and server CPU."""
    wait_drained(servers)  # a backlog left by the last run would compete for the server core
    port = servers.ports[("floor_" if run.server == "floor" else "") + run.protocol]
    target = servers.floor if run.server == "floor" else servers.kpiloop
    workers = 64 if run.rate else CONCURRENCY
    procs = []
    for n in range(clients):
        opts = {"protocol": run.protocol, "port": port, "pool": str(pool), "seconds": run.seconds}
        opts["warmup"] = 0.0 if run.rate else 1.0
        opts |= {"workers": workers // clients + (n < workers % clients), "rate": run.rate / clients}
        cmd = [*client_pin, sys.executable, __file__, "--client", json.dumps(opts)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.readline()  # WARM
    before = _window_point(servers, target.pid)
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.readline()  # DONE
    after = _window_point(servers, target.pid)
    results = []
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        results.append(json.loads(line.removeprefix("RESULT ")))
        proc.wait()
    if run.rate:  # open loop: requests scheduled before DONE may still have been in flight
        after = _window_point(servers, target.pid)
    return summarize(run, results, before, after, servers)


def wait_drained(servers: Servers, limit_s: float = 120.0) -> float:
    """Seconds until kpiloop's ingest queue is empty (at most ``limit_s``)."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        scraped = _scrape(servers.ports["prometheus"])
        if scraped is not None and scraped["depth"] == 0:
            break
        time.sleep(0.05)
    return time.monotonic() - started


def _window_point(servers: Servers, pid: int) -> dict[str, float]:
    point = {"t": time.monotonic(), "cpu": cpu_seconds(pid)}
    scraped = _scrape(servers.ports["prometheus"]) or {}
    return point | scraped


def summarize(
    run: Run, results: list[dict[str, Any]], before: dict[str, float], after: dict[str, float], servers: Servers
) -> dict[str, Any]:
    wall = after["t"] - before["t"]
    client_s = max(r["window"][1] for r in results) - min(r["window"][0] for r in results)
    requests, ok = sum(r["requests"] for r in results), sum(r["ok"] for r in results)
    statuses: dict[str, int] = {}
    for r in results:
        for status, count in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    latencies = sorted(x for r in results for x in r["latencies"])
    row: dict[str, Any] = {"bench": "ingest", "mode": "open_loop" if run.rate else "closed_loop"}
    row |= {"protocol": run.protocol, "server": run.server, "spans_per_request": run.spans}
    row |= {"requests_per_s": round(requests / client_s, 1), "ok_per_s": round(ok / client_s, 1)}
    row |= {"ok_spans_per_s": round(ok * run.spans / client_s), "statuses": statuses}
    row |= {"p50_ms": _quantile(latencies, 0.5), "p99_ms": _quantile(latencies, 0.99)}
    row |= {"server_cpu": round((after["cpu"] - before["cpu"]) / wall, 2)}
    row |= {"client_cpu": round(sum(r["cpu_s"] for r in results) / (client_s + 1.0), 2)}
    if run.server == "kpiloop":
        processed = (after["received"] - after["depth"]) - (before["received"] - before["depth"])
        row |= {"spans_per_s": round(processed / wall), "queue_depth_end": after["depth"]}
        row |= {"refused": after["refused"] - before["refused"]}
    else:
        row["spans_per_s"] = row["ok_spans_per_s"]
    if run.rate:
        row |= open_loop_checks(run, statuses, requests, servers, after)
    return row | {"seconds": run.seconds, "python": platform.python_version(), "cpus": os.cpu_count()}


def open_loop_checks(
    run: Run, statuses: dict[str, int], requests: int, servers: Servers, after: dict[str, float]
) -> dict[str, Any]:
    """Nothing lost (every request 2xx and every span received), no 5xx, backlog drained in 5 s."""
    drain = wait_drained(servers, 60.0) if after["depth"] else 0.0
    five_xx = sum(n for s, n in statuses.items() if s.startswith("5") or s in ("UNAVAILABLE", "INTERNAL"))
    ok = statuses.get("200", 0) + statuses.get("OK", 0)
    return {
        "rate_requests_per_s": run.rate,
        "drain_s": round(drain, 2),
        "five_xx": five_xx,
        "lost": requests - ok,
        "passed": five_xx == 0 and requests == ok and drain <= DRAIN_LIMIT_S,
    }


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2)


def ratios(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """kpiloop / floor for each (protocol, size): spans/s, requests/s, and whether the target is met."""
    closed = [r for r in rows if r["mode"] == "closed_loop"]
    for kp in (r for r in closed if r["server"] == "kpiloop"):
        floor = next(r for r in closed if r["server"] == "floor" and _same(r, kp))
        spans = kp["spans_per_s"] / floor["spans_per_s"] if floor["spans_per_s"] else 0.0
        reqs = kp["ok_per_s"] / floor["ok_per_s"] if floor["ok_per_s"] else 0.0
        key = reqs if kp["spans_per_request"] == 1 else spans
        yield {
            "bench": "ingest",
            "mode": "ratio",
            "protocol": kp["protocol"],
            "spans_per_request": kp["spans_per_request"],
            "spans_ratio": round(spans, 3),
            "requests_ratio": round(reqs, 3),
            "target_met": key >= 0.5,
        }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["protocol"] == b["protocol"] and a["spans_per_request"] == b["spans_per_request"])


def table(rows: list[dict[str, Any]], ratio_rows: list[dict[str, Any]]) -> None:
    heads = ("proto", "spans/req", "server", "mode", "req/s", "spans/s", "p50 ms", "p99 ms", "srv cpu", "cli cpu")
    print("\n" + " ".join(f"{h:>10}" for h in heads))
    for r in rows:
        cells = [r["protocol"], r["spans_per_request"], r["server"], r["mode"], r["ok_per_s"], r["spans_per_s"]]
        cells += [r["p50_ms"], r["p99_ms"], r["server_cpu"], r["client_cpu"]]
        print(" ".join(f"{c!s:>10}" for c in cells))
    print("\n" + " ".join(f"{h:>10}" for h in ("proto", "spans/req", "spans x", "req x", "target")))
    for r in ratio_rows:
        cells = [r["protocol"], r["spans_per_request"], r["spans_ratio"], r["requests_ratio"], r["target_met"]]
        print(" ".join(f"{c!s:>10}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s per measurement, no open-loop run")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per closed-loop run")
    parser.add_argument("--sizes", default="1,10,100,512", help="spans per request")
    parser.add_argument("--protocols", default="http,grpc")
    parser.add_argument("--clients", type=int, default=1, help="load-generator processes")
    parser.add_argument("--open-loop-seconds", type=float, default=60.0)
    parser.add_argument("--serve-floor", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        return serve_floor(*args.serve_floor)
    if args.client:
        return client_main(json.loads(args.client))
    seconds = 2.0 if args.quick else args.seconds
    sizes = [int(s) for s in args.sizes.split(",")]
    protocols = args.protocols.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="kpiloop-ingest-"))
    server_pin, client_pin = cores()
    pools = {size: workdir / f"pool-{size}.bin" for size in {*sizes, OPEN_LOOP_SIZE}}
    for size, path in pools.items():
        write_pool(path, size)
    servers = start_servers(server_pin, workdir)
    rows: list[dict[str, Any]] = []
    try:
        for protocol in protocols:
            for size in sizes:
                for server in ("floor", "kpiloop"):
                    rows.append(
                        measure(Run(protocol, server, size, seconds), servers, pools[size], client_pin, args.clients)
                    )
                    print(json.dumps(rows[-1]), flush=True)
            if not args.quick:
                rows.append(open_loop(protocol, rows, servers, pools, client_pin, args))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    ratio_rows = list(ratios(rows))
    for row in ratio_rows:
        print(json.dumps(row), flush=True)
    table(rows, ratio_rows)
    print(f"(server pinned with {' '.join(server_pin) or 'no taskset'}; clients with {' '.join(client_pin) or '-'})")


def open_loop(
    protocol: str, rows: list[dict[str, Any]], servers: Servers, pools: dict[int, Path], pin: list[str], args: Any
) -> dict[str, Any]:
    """80 % of kpiloop's closed-loop max at ``OPEN_LOOP_SIZE`` spans/request (measured now if not yet)."""
    peak = next(
        (r for r in rows if r["server"] == "kpiloop" and r["protocol"] == protocol and r["spans_per_request"] == 100),
        None,
    )
    if peak is None:
        peak = measure(Run(protocol, "kpiloop", OPEN_LOOP_SIZE, 5.0), servers, pools[OPEN_LOOP_SIZE], pin, args.clients)
    rate = round(OPEN_LOOP_SHARE * peak["spans_per_s"] / OPEN_LOOP_SIZE, 1)
    run = Run(protocol, "kpiloop", OPEN_LOOP_SIZE, args.open_loop_seconds, rate)
    return measure(run, servers, pools[OPEN_LOOP_SIZE], pin, args.clients)


if __name__ == "__main__":
    main()
