#!/usr/bin/env python3
"""Benchmark harness for registryctl against a reference registry (issue 6).

Drives registries over the Docker Registry HTTP API V2 with keep-alive
connections (a plain-socket HTTP/1.1 client, Python standard library only;
Debian's `wrk` and `ab` for the request-rate scenarios) and prints one figure
per scenario. With a reference registry (CNCF Distribution from Debian's
docker-registry package, started here) both
run the same workload in turn and the table shows how many times better
registryctl is, next to the targets of the issue.

    python3 bench/registry_bench.py --quick
    python3 bench/registry_bench.py --json out.json
    python3 bench/registry_bench.py --reference none --registryctl build/registryctl

See bench/README.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import http.client
import json
import mmap
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterable

MiB = 1 << 20
BUF = MiB  # read/write block size for bodies

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = ", ".join([
    OCI_MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])

# Re-open a keep-alive connection that sat idle this long: registryctl closes
# idle connections after 5 s, and a request on a connection the server has
# just closed fails.
IDLE_RECONNECT_S = 2.0

FEED = "bench"  # registryctl repositories are FEED/REPO; Distribution takes these too


class BenchError(Exception):
    """A failure that ends the benchmark with a clear message (no traceback)."""


# --------------------------------------------------------------------------
# Sizes of the two modes
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Sizes:
    blob_mib: int            # blob size for push and pull
    chunk_mib: int           # PATCH size for the chunked push
    push_reps: int           # pushes per push scenario (median reported)
    pull_reps: int           # pulls per pull scenario (median reported)
    images_one: int          # small images pushed by the single client
    images_per_client: int   # small images pushed by each of the 8 clients
    clients: int             # concurrent clients for the small-image push
    rate_seconds: int        # duration of each request-rate run
    connections: int         # keep-alive connections of the rate runs
    tags: int                # tags in the tag-list repository
    tag_page: int            # n of the paginated tag list
    repos: int               # extra repositories for the catalog
    catalog_page: int        # n of the catalog pages (Distribution's maximum is 1000)
    deletes: int             # manifests deleted in the DELETE scenario
    list_reps: int           # repetitions of tag list and catalog (median reported)
    sha_mib: int             # data hashed for the SHA-256 limit
    gc_blobs: int            # blobs in the GC scenario's store (half unreferenced)
    setup_threads: int = 8   # clients that fill repositories before a scenario


QUICK = Sizes(blob_mib=32, chunk_mib=8, push_reps=2, pull_reps=2, images_one=30,
              images_per_client=5, clients=8, rate_seconds=2, connections=16, tags=500,
              tag_page=100, repos=200, catalog_page=1000, deletes=200, list_reps=3,
              sha_mib=128, gc_blobs=10000)
FULL = Sizes(blob_mib=256, chunk_mib=8, push_reps=3, pull_reps=3, images_one=200,
             images_per_client=40, clients=8, rate_seconds=10, connections=16, tags=5000,
             tag_page=100, repos=2000, catalog_page=1000, deletes=2000, list_reps=5,
             sha_mib=1024, gc_blobs=100000)


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(round(pct / 100.0 * len(sorted_values) + 0.5 - 1e-9)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def split_location(location: str) -> str:
    """Path and query of a Location header (absolute or relative)."""
    parts = urllib.parse.urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


def with_query(path: str, **params: str) -> str:
    sep = "&" if "?" in path else "?"
    return path + sep + urllib.parse.urlencode(params)


def next_link(headers: "Headers") -> str | None:
    """The target of `Link: <...>; rel="next"`, or None."""
    link = headers.get("Link")
    if not link:
        return None
    m = re.search(r'<([^>]*)>\s*;\s*rel="?next"?', link)
    return split_location(m.group(1)) if m else None


def run_threads(count: int, target: Callable[[int], None], name: str) -> None:
    """Runs target(i) for i in range(count) on threads; re-raises the first error."""
    errors: list[BaseException] = []

    def wrap(i: int) -> None:
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i,), name=f"{name}-{i}", daemon=True)
               for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def parallel_items(reg: "Registry", threads: int, items: list, fn: Callable) -> float:
    """Calls fn(conn, item) for every item from `threads` keep-alive clients.
    Returns the elapsed seconds."""
    lock = threading.Lock()
    it = iter(items)

    def worker(_: int) -> None:
        with reg.connect() as conn:
            while True:
                with lock:
                    item = next(it, None)
                if item is None:
                    return
                fn(conn, item)

    start = time.perf_counter()
    run_threads(threads, worker, "setup")
    return time.perf_counter() - start


class FileSlice:
    """A read-only window [offset, offset+length) of a file, for request bodies
    (so big bodies stream from the file instead of sitting in memory)."""

    def __init__(self, path: str, offset: int, length: int):
        self._f = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._f.seek(offset)
        self._left = length

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "FileSlice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------
# Registry client
# --------------------------------------------------------------------------

class Headers(dict):
    """Response header fields by lower-case name (a repeated field: the last)."""

    def get(self, name: str, default=None):
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name) -> bool:
        return super().__contains__(name.lower())


@dataclass
class Response:
    status: int
    headers: Headers
    body: bytes


class ClientError(OSError):
    """The connection broke or the server's answer is not HTTP/1.x as expected."""


class StreamedResponse:
    """A response whose status and header are read and whose body is not: read()
    or readinto() it to the end before the connection's next request."""

    def __init__(self, conn: "Conn", status: int, headers: Headers, will_close: bool,
                 length: int | None, chunked: bool):
        self.status, self.headers, self.will_close = status, headers, will_close
        self._conn = conn
        self._left = length  # body bytes not yet read; None: until close (or chunked)
        self._chunked = chunked
        self._chunk_left = 0
        self._done = length == 0

    def readinto(self, buf) -> int:
        """Up to len(buf) bytes of the body into buf; 0 at its end."""
        if self._done:
            return 0
        view = memoryview(buf)
        if self._chunked:
            if self._chunk_left == 0:
                size_line = self._conn._read_line()
                self._chunk_left = int(size_line.split(b";", 1)[0], 16)
                if self._chunk_left == 0:
                    while self._conn._read_line():  # trailer fields, then the empty line
                        pass
                    self._done = True
                    return 0
            n = self._conn._read_into(view[:self._chunk_left])
            self._chunk_left -= n
            if self._chunk_left == 0:
                self._conn._read_line()  # the CRLF after the chunk
            return n
        want = len(view) if self._left is None else min(len(view), self._left)
        n = self._conn._read_into(view[:want], eof_ok=self._left is None)
        if self._left is not None:
            self._left -= n
            self._done = self._left == 0
        elif n == 0:
            self._done = True
        return n

    def read(self) -> bytes:
        if self._left is not None and not self._chunked:
            out = bytearray(self._left)
            view, got = memoryview(out), 0
            while got < len(out):
                got += self.readinto(view[got:])
            return bytes(out)
        out, buf = bytearray(), bytearray(64 * 1024)
        while n := self.readinto(buf):
            out += buf[:n]
        return bytes(out)


class Conn:
    """One keep-alive HTTP/1.1 connection to a registry, on a plain socket.

    Not http.client: its header parsing (the email package) cost 85-180 us per
    request here, about twice what registryctl spends serving a small request,
    so the small-request scenarios measured this client more than the server.
    This one sends each request with one sendall (a body over 64 KiB streams
    in 1 MiB pieces after the header), reads with one buffer and parses only
    the status line and the header fields."""

    def __init__(self, host: str, port: int, timeout: float = 600.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._last_used = 0.0

    def _socket(self) -> socket.socket:
        if self._sock is not None and time.monotonic() - self._last_used > IDLE_RECONNECT_S:
            self.close()
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buf = bytearray()
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf = bytearray()

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fill(self) -> int:
        data = self._sock.recv(256 * 1024)
        self._buf += data
        return len(data)

    def _read_line(self) -> bytes:
        while (end := self._buf.find(b"\r\n")) < 0:
            if not self._fill():
                raise ClientError(f"{self.host}:{self.port} closed the connection mid-response")
        line = bytes(self._buf[:end])
        del self._buf[:end + 2]
        return line

    def _read_into(self, view: memoryview, eof_ok: bool = False) -> int:
        if not len(view):
            return 0
        if self._buf:
            n = min(len(view), len(self._buf))
            view[:n] = self._buf[:n]
            del self._buf[:n]
            return n
        n = self._sock.recv_into(view)
        if n == 0 and not eof_ok:
            raise ClientError(f"{self.host}:{self.port} closed the connection mid-body")
        return n

    def _send(self, method: str, path: str, body, headers: dict) -> None:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        sock = self._socket()
        if body is None:
            sock.sendall(head)
        elif isinstance(body, (bytes, bytearray)):
            if len(body) <= 64 * 1024:
                sock.sendall(head + body)
            else:
                sock.sendall(head)
                sock.sendall(body)
        else:  # a file-like body of the announced Content-Length
            sock.sendall(head)
            while data := body.read(BUF):
                sock.sendall(data)

    def _response(self, method: str) -> StreamedResponse:
        line = self._read_line()
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ClientError(f"not an HTTP/1.x status line: {line[:100]!r}")
        status = int(parts[1])
        headers = Headers()
        while field := self._read_line():
            name, _, value = field.partition(b":")
            headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
        connection = headers.get("Connection", "").lower()
        will_close = connection == "close" or (parts[0] == b"HTTP/1.0" and connection != "keep-alive")
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            length: int | None = 0
        elif chunked:
            length = None
        elif "Content-Length" in headers:
            length = int(headers["Content-Length"])
        else:
            length, will_close = None, True  # the body ends when the server closes
        return StreamedResponse(self, status, headers, will_close, length, chunked)

    def open(self, method: str, path: str, body=None, headers: dict | None = None
             ) -> StreamedResponse:
        """Sends a request and returns the response with its body still unread.
        Requests without a body or with a bytes body are retried once when a
        reused connection turns out to have been closed by the server."""
        headers = dict(headers or {})
        if isinstance(body, (bytes, bytearray)):
            headers.setdefault("Content-Length", str(len(body)))
        elif body is None and method in ("POST", "PUT", "PATCH"):
            headers.setdefault("Content-Length", "0")
        elif body is not None and "Content-Length" not in headers:
            raise BenchError(f"{method} {path}: a streamed body needs a Content-Length")
        retryable = body is None or isinstance(body, (bytes, bytearray))
        for attempt in (0, 1):
            reused = self._sock is not None
            try:
                self._send(method, path, body, headers)
                resp = self._response(method)
                self._last_used = time.monotonic()
                return resp
            except (ClientError, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 1 or not reused or not retryable:
                    raise
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, body=None, headers: dict | None = None,
                expect: Iterable[int] = (200,)) -> Response:
        resp = self.open(method, path, body, headers)
        data = resp.read()
        self._last_used = time.monotonic()
        if resp.will_close:
            self.close()
        if resp.status not in tuple(expect):
            raise BenchError(f"{method} {path} answered {resp.status} (expected "
                             f"{'/'.join(map(str, expect))}): {data[:300]!r}")
        return Response(resp.status, resp.headers, data)


class Registry:
    """The registry API calls the scenarios use, on top of Conn."""

    def __init__(self, name: str, host: str, port: int, pid: int | None = None):
        self.name, self.host, self.port, self.pid = name, host, port, pid
        # Whether POST .../uploads/?digest= completes a monolithic upload in one
        # request (registryctl) or only starts a session (Distribution 2.8).
        self.single_post: bool | None = None
        # (repo, digest) of the last big blob pushed, which the pull scenario reads.
        self.pulled: tuple[str, str] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self) -> Conn:
        return Conn(self.host, self.port)

    # -- blobs ---------------------------------------------------------------

    def detect_single_post(self, conn: Conn) -> None:
        data = os.urandom(1024)
        digest = sha256_digest(data)
        resp = conn.request("POST", with_query(f"/v2/{FEED}/probe/blobs/uploads/", digest=digest),
                            body=data, headers={"Content-Type": "application/octet-stream"},
                            expect=(201, 202))
        self.single_post = resp.status == 201
        if not self.single_post:  # a session was started and the body ignored: cancel it
            conn.request("DELETE", split_location(resp.headers["Location"]), expect=(204, 404))

    def start_upload(self, conn: Conn, repo: str) -> str:
        resp = conn.request("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
        return split_location(resp.headers["Location"])

    def finish_upload(self, conn: Conn, location: str, digest: str, body=None,
                      length: int = 0) -> None:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        resp = conn.request("PUT", with_query(location, digest=digest), body=body,
                            headers=headers, expect=(201,))
        check_digest_header(resp, digest)

    def push_blob_monolithic(self, conn: Conn, repo: str, digest: str, body, length: int) -> None:
        """One POST ?digest= with the body where the registry supports it, else the
        spec's other monolithic form: POST, then PUT ?digest= with the body."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        if self.single_post:
            resp = conn.request("POST", with_query(f"/v2/{repo}/blobs/uploads/", digest=digest),
                                body=body, headers=headers, expect=(201,))
            check_digest_header(resp, digest)
        else:
            self.finish_upload(conn, self.start_upload(conn, repo), digest, body, length)

    def push_blob_like_a_client(self, conn: Conn, repo: str, digest: str, data: bytes,
                                patch: bool = False) -> None:
        """What containerd, oras and crane do for a small blob: HEAD, POST, PUT
        ?digest= with the body; with `patch`, what docker and podman do: HEAD,
        POST, PATCH with the body, PUT ?digest= without one."""
        resp = conn.request("HEAD", f"/v2/{repo}/blobs/{digest}", expect=(200, 404))
        if resp.status == 200:
            return
        location = self.start_upload(conn, repo)
        if not patch:
            self.finish_upload(conn, location, digest, data, len(data))
            return
        resp = conn.request("PATCH", location, body=data, expect=(202,), headers={
            "Content-Type": "application/octet-stream", "Content-Length": str(len(data))})
        self.finish_upload(conn, split_location(resp.headers["Location"]), digest)

    def mount_blob(self, conn: Conn, repo: str, digest: str, source: str, data: bytes) -> None:
        """Cross-repository mount; falls back to an upload when the registry declines."""
        resp = conn.request("POST", with_query(f"/v2/{repo}/blobs/uploads/", mount=digest,
                                               **{"from": source}), expect=(201, 202))
        if resp.status == 202:
            self.finish_upload(conn, split_location(resp.headers["Location"]), digest, data,
                               len(data))

    # -- manifests -----------------------------------------------------------

    def put_manifest(self, conn: Conn, repo: str, reference: str, manifest: bytes) -> None:
        resp = conn.request("PUT", f"/v2/{repo}/manifests/{reference}", body=manifest,
                            headers={"Content-Type": OCI_MANIFEST}, expect=(201,))
        check_digest_header(resp, sha256_digest(manifest))

    def delete_manifest(self, conn: Conn, repo: str, digest: str) -> None:
        conn.request("DELETE", f"/v2/{repo}/manifests/{digest}", expect=(202,))

    # -- listings ------------------------------------------------------------

    def walk_pages(self, conn: Conn, path: str, key: str) -> tuple[list[str], int, bool]:
        """Follows Link headers from path. Returns (names, requests, page_overflow);
        page_overflow: a page held more entries than its n asked for."""
        names: list[str] = []
        requests = 0
        overflow = False
        want = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query).get("n")
        n = int(want[0]) if want else None
        while path:
            resp = conn.request("GET", path)
            requests += 1
            page = json.loads(resp.body).get(key) or []
            if n is not None and len(page) > n:
                overflow = True
            names.extend(page)
            path = next_link(resp.headers)
            if requests > 1_000_000:
                raise BenchError(f"{self.name}: pagination of {key} does not end")
        return names, requests, overflow

    # -- process -------------------------------------------------------------

    def memory(self) -> dict[str, float] | None:
        """VmRSS and VmHWM of the server process in MiB, None if not ours."""
        if self.pid is None:
            return None
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) / 1024.0
        return out

    def cpu_seconds(self) -> float | None:
        if self.pid is None:
            return None
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_digest_header(resp: Response, digest: str) -> None:
    got = resp.headers.get("Docker-Content-Digest")
    if got is not None and got != digest:
        raise BenchError(f"server stored {got}, expected {digest}")


# --------------------------------------------------------------------------
# Servers started by the benchmark
# --------------------------------------------------------------------------

def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if the benchmark itself is killed."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Server:
    """A server process: started in its own session (Ctrl-C reaches only the
    benchmark, which stops it), stopped with SIGTERM, then SIGKILL."""

    name = "server"

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(workdir, f"{self.name}.log")
        self.host = "127.0.0.1"
        self.port = 0

    def _spawn(self, argv: list[str]) -> None:
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_die_with_parent)

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with status {self.proc.returncode}; "
                             f"last lines of {self.log_path}:\n{self.log_tail()}")

    def wait_http(self, path: str = "/v2/", timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with Conn(self.host, self.port, timeout=2) as c:
                    if c.request("GET", path, expect=(200, 401, 403, 404)).status == 200:
                        return
            except (OSError, http.client.HTTPException, BenchError):
                pass
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not answer GET {path} on {self.host}:{self.port} "
                         f"within {timeout:.0f} s; log:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        log(f"stopping {self.name}")
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log(f"{self.name} ignored SIGTERM for 15 s: SIGKILL")
            self.proc.kill()
            self.proc.wait(timeout=10)
        log(f"{self.name} stopped")

    def registry(self) -> Registry:
        return Registry(self.name, self.host, self.port, self.proc.pid if self.proc else None)


class RegistryctlServer(Server):
    name = "registryctl"

    def __init__(self, workdir: str, binary: str, prepare: Iterable[list[str]] = (),
                 feed_args: Iterable[str] = ()):
        super().__init__(workdir)
        self.binary = binary
        self.data = os.path.join(workdir, "registryctl-data")
        self.prepare = [list(c) for c in prepare]  # CLI commands run before the feed is made
        self.feed_args = list(feed_args)            # extra `feed create` arguments

    def start(self) -> None:
        # Run a private copy: the build directory may be relinked while we run.
        binary = os.path.join(self.workdir, "registryctl-under-test")
        shutil.copy2(self.binary, binary)
        self.identity = (f"{self.binary}, {file_digest(binary)[7:19]}, built "
                         + time.strftime("%Y-%m-%d %H:%M", time.localtime(
                             os.path.getmtime(binary))))
        ready = os.path.join(self.workdir, "registryctl.ready")
        base = [binary, "--data", self.data]
        for command in self.prepare + [["feed", "create", FEED] + self.feed_args]:
            r = subprocess.run(base + command, capture_output=True, text=True)
            if r.returncode != 0:
                raise BenchError(f"'{' '.join(base + command)}' failed "
                                 f"({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
        self._spawn(base + ["serve", "--quiet", "--listen", "127.0.0.1:0", "--ready-file", ready])
        deadline = time.monotonic() + 20
        address = ""
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError):
                with open(ready) as f:
                    address = f.read().strip()
            if address:
                break
            time.sleep(0.02)
        if not address:
            raise BenchError(f"registryctl wrote no ready file within 20 s; log:\n{self.log_tail()}")
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.wait_http()


class DistributionServer(Server):
    name = "docker-registry"

    def __init__(self, workdir: str, binary: str):
        super().__init__(workdir)
        self.binary = binary
        self.data = os.path.join(workdir, "distribution-data")

    def start(self) -> None:
        os.makedirs(self.data, exist_ok=True)
        self.port = free_port()
        config = os.path.join(self.workdir, "distribution.yml")
        # The Debian/upstream default configuration (in-memory blob descriptor
        # cache, filesystem storage) with deletes on, quiet logs, loopback only.
        with open(config, "w") as f:
            f.write(f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {self.data}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{self.port}
  secret: registry-bench-secret
""")
        self._spawn([self.binary, "serve", config])
        self.wait_http()


class NginxServer(Server):
    """nginx serving one static file, for the loopback HTTP limit."""

    name = "nginx"

    def __init__(self, workdir: str, binary: str, file_path: str):
        super().__init__(os.path.join(workdir, "nginx"))
        os.makedirs(os.path.join(self.workdir, "www"), exist_ok=True)
        self.log_path = os.path.join(self.workdir, "nginx.log")
        self.binary = binary
        self.file_name = "blob"
        target = os.path.join(self.workdir, "www", self.file_name)
        try:
            os.link(file_path, target)
        except OSError:
            shutil.copyfile(file_path, target)
        # A body the size of a registry's small answer (an error, a 202's empty one).
        self.small_name = "small"
        with open(os.path.join(self.workdir, "www", self.small_name), "wb") as f:
            f.write(b"{}")

    def start(self) -> None:
        self.port = free_port()
        d = self.workdir
        conf = os.path.join(d, "nginx.conf")
        temps = "\n".join(f"  {k}_temp_path {d}/{k}_temp;"
                          for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        with open(conf, "w") as f:
            f.write(f"""daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type application/octet-stream;
{temps}
  server {{
    listen 127.0.0.1:{self.port};
    root {d}/www;
  }}
}}
""")
        self._spawn([self.binary, "-p", d, "-c", conf, "-e", f"{d}/error.log"])
        self.wait_http(path=f"/{self.file_name}")


# A one-connection-at-a-time HTTP server that reads and discards request bodies
# and answers 200: the ceiling of this client's uploads over loopback.
DISCARD_SERVER = r"""
import socket, sys
srv = socket.socket()
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(16)
buf = bytearray(1 << 20)
while True:
    conn, _ = srv.accept()
    data = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in data:
                more = conn.recv(65536)
                if not more:
                    break
                data += more
            if b"\r\n\r\n" not in data:
                break
            head, _, data = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            length -= len(data)
            data = b"" if length >= 0 else data[len(data) + length:]
            while length > 0:
                n = conn.recv_into(buf, min(length, len(buf)))
                if n == 0:
                    break
                length -= n
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
"""


class DiscardServer(Server):
    name = "discard-server"

    def start(self) -> None:
        self.port = free_port()
        self._spawn([sys.executable, "-c", DISCARD_SERVER, str(self.port)])
        self.wait_http("/")


# --------------------------------------------------------------------------
# Measurements shared by the scenarios
# --------------------------------------------------------------------------

@dataclass
class Metric:
    key: str
    label: str
    unit: str
    value: float | None
    higher_is_better: bool
    samples: list[float] = field(default_factory=list)
    note: str = ""
    # Why this figure cannot be held against the target (the other side did
    # something else), or "".
    incomparable: str = ""


@dataclass
class BigBlob:
    """A random file of the blob size; variant i differs in its first 32 bytes,
    so every push stores new content without generating a new file."""
    path: str
    size: int

    @classmethod
    def create(cls, path: str, size: int) -> "BigBlob":
        with open(path, "wb") as f:
            left = size
            while left:
                n = min(left, 4 * MiB)
                f.write(os.urandom(n))
                left -= n
        return cls(path, size)

    def variant(self, i: int) -> str:
        """Rewrites the file as variant i and returns its digest."""
        with open(self.path, "r+b") as f:
            f.write(hashlib.sha256(f"variant {i}".encode()).digest())
        return file_digest(self.path)


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    buf = bytearray(BUF)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return "sha256:" + h.hexdigest()


def read_body(resp: "StreamedResponse | http.client.HTTPResponse", verify: bool) -> tuple[int, str | None]:
    """Reads a response body in 1 MiB pieces; optionally hashes it."""
    buf = bytearray(BUF)
    view = memoryview(buf)
    h = hashlib.sha256() if verify else None
    total = 0
    while n := resp.readinto(buf):
        total += n
        if h is not None:
            h.update(view[:n])
    return total, ("sha256:" + h.hexdigest()) if h else None


def get_throughput(conn: Conn, path: str, size: int, verify_digest: str | None) -> float:
    """One GET of a big body; MiB/s. A redirect (a registry whose blobs live in
    an object store) is followed as clients do, and its round trip counts."""
    start = time.perf_counter()
    resp = conn.open("GET", path)
    other: http.client.HTTPConnection | None = None
    if resp.status in (302, 307):
        resp.read()
        target = urllib.parse.urlsplit(resp.headers["Location"])
        if resp.will_close:
            conn.close()
        kind = (http.client.HTTPSConnection if target.scheme == "https"
                else http.client.HTTPConnection)
        other = kind(target.hostname, target.port, timeout=600, blocksize=BUF)
        other.request("GET", target.path + ("?" + target.query if target.query else ""))
        resp = other.getresponse()
    if resp.status != 200:
        raise BenchError(f"GET {path} answered {resp.status}: {resp.read()[:300]!r}")
    total, digest = read_body(resp, verify_digest is not None)
    elapsed = time.perf_counter() - start
    if other is not None:
        other.close()
    elif resp.will_close:
        conn.close()
    if total != size:
        raise BenchError(f"GET {path} returned {total} bytes, expected {size}")
    if verify_digest is not None and digest != verify_digest:
        raise BenchError(f"GET {path} returned content with digest {digest}, "
                         f"expected {verify_digest}")
    return size / MiB / elapsed


@dataclass
class Image:
    """A small OCI image: three tiny layers, a config and its manifest."""
    blobs: list[tuple[str, bytes]]   # (digest, data): layers then config
    manifest: bytes

    @classmethod
    def make(cls, seed: str, layer_bytes: int = 1024, annotation: str | None = None) -> "Image":
        layers = [os.urandom(layer_bytes) for _ in range(3)]
        config = json.dumps({
            "architecture": "amd64", "os": "linux", "created": "2026-11-22T00:00:00Z",
            "config": {"Labels": {"bench.seed": seed}},
            "rootfs": {"type": "layers",
                       "diff_ids": [sha256_digest(layer) for layer in layers]},
        }, separators=(",", ":")).encode()
        return cls.from_parts(layers, config, annotation)

    @classmethod
    def from_parts(cls, layers: list[bytes], config: bytes,
                   annotation: str | None = None) -> "Image":
        manifest: dict = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config),
                       "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256_digest(layer),
                        "size": len(layer)} for layer in layers],
        }
        if annotation is not None:
            manifest["annotations"] = {"bench.id": annotation}
        blobs = [(sha256_digest(b), b) for b in layers + [config]]
        return cls(blobs, json.dumps(manifest, separators=(",", ":")).encode())

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    def push(self, reg: Registry, conn: Conn, repo: str, reference: str,
             patch: bool = False) -> None:
        for digest, data in self.blobs:
            reg.push_blob_like_a_client(conn, repo, digest, data, patch)
        reg.put_manifest(conn, repo, reference, self.manifest)


def rate_with_wrk(reg: Registry, ctx: "Context", path: str, method: str,
                  headers: dict[str, str]) -> tuple[float, float, float, str]:
    """GET request rate with `wrk`: (requests/s, p50 ms, p99 ms, note)."""
    assert method == "GET", "wrk 4.1 waits for a body after HEAD: use ab for HEAD"
    cmd = [ctx.tools["wrk"], f"-t{ctx.args.wrk_threads}", f"-c{ctx.sizes.connections}",
           f"-d{ctx.sizes.rate_seconds}s", "--latency", "--timeout", "5s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(reg.url + path)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=ctx.sizes.rate_seconds + 60)
    out = r.stdout
    if r.returncode != 0:
        raise BenchError(f"wrk failed ({r.returncode}): {r.stderr.strip() or out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not (rate and p50 and p99):
        raise BenchError(f"cannot parse the output of wrk:\n{out}")
    if float(rate.group(1)) == 0:
        raise BenchError(f"wrk completed no {method} {path} request on {reg.name}:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise BenchError(f"wrk: {non2xx.group(1)} of the {method} {path} requests to "
                         f"{reg.name} failed")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    socket_errors = re.search(r"Socket errors:.*", out)
    note = "wrk" + (f", {socket_errors.group(0)}" if socket_errors else "")
    return (float(rate.group(1)), float(p50.group(1)) * scale[p50.group(2)],
            float(p99.group(1)) * scale[p99.group(2)], note)


def rate_with_ab(reg: Registry, ctx: "Context", path: str, method: str,
                 headers: dict[str, str]) -> tuple[float, float, float, str]:
    """GET or HEAD request rate with ApacheBench (`ab -k`, one thread, HTTP/1.0
    keep-alive): (requests/s, p50 ms, p99 ms, note). Used for HEAD, which the
    wrk of Debian 12 cannot do (it waits for the body the Content-Length
    announces)."""
    csv = os.path.join(ctx.workdir, "ab-percentiles.csv")
    # -n after -t: ab sizes its sample array by -n, so keep it modest.
    cmd = [ctx.tools["ab"], "-q", "-k", "-c", str(ctx.sizes.connections),
           "-t", str(ctx.sizes.rate_seconds), "-n", "5000000", "-s", "5", "-e", csv]
    if method == "HEAD":
        cmd.append("-i")
    elif method != "GET":
        raise BenchError(f"ab cannot send {method}")
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(reg.url + path)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=ctx.sizes.rate_seconds + 60)
    out = r.stdout
    if r.returncode != 0:
        raise BenchError(f"ab failed ({r.returncode}): {r.stderr.strip() or out}")
    rate = re.search(r"Requests per second:\s+([\d.]+)", out)
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    if not rate:
        raise BenchError(f"cannot parse the output of ab:\n{out}")
    if non2xx or (failed and int(failed.group(1))):
        raise BenchError(f"ab: {method} {path} on {reg.name} had failures:\n{out}")
    pct: dict[int, float] = {}
    with open(csv) as f:
        for line in f:
            k, _, v = line.strip().partition(",")
            if k.isdigit():
                pct[int(k)] = float(v)
    keepalive = re.search(r"Keep-Alive requests:\s+(\d+)", out)
    complete = re.search(r"Complete requests:\s+(\d+)", out)
    note = "ab -k"
    if keepalive and complete and keepalive.group(1) != complete.group(1):
        note += f", only {keepalive.group(1)} of {complete.group(1)} requests kept alive"
    longest = re.search(r"100%\s+(\d+) \(longest request\)", out)
    if longest:
        note += f", longest {longest.group(1)} ms"
    return float(rate.group(1)), pct[50], pct[99], note


def rate_with_python(reg: Registry, ctx: "Context", path: str, method: str,
                     headers: dict[str, str]) -> tuple[float, float, float, str]:
    """Request rate with Python threads, one keep-alive connection each. The GIL
    caps this at a few thousand requests/s: a floor, not the server's limit."""
    n = ctx.sizes.connections
    latencies: list[list[float]] = [[] for _ in range(n)]
    deadline = time.perf_counter() + ctx.sizes.rate_seconds

    def worker(i: int) -> None:
        with reg.connect() as conn:
            lat = latencies[i]
            while True:
                t0 = time.perf_counter()
                if t0 >= deadline:
                    return
                conn.request(method, path, headers=headers)
                lat.append(time.perf_counter() - t0)

    start = time.perf_counter()
    run_threads(n, worker, "rate")
    elapsed = time.perf_counter() - start
    merged = sorted(x for lat in latencies for x in lat)
    return (len(merged) / elapsed, percentile(merged, 50) * 1000,
            percentile(merged, 99) * 1000, "python threads (client-bound)")


# --------------------------------------------------------------------------
# Scenarios: each takes the registry and the context and returns Metrics
# --------------------------------------------------------------------------

@dataclass
class Context:
    args: argparse.Namespace
    sizes: Sizes
    workdir: str
    blob: BigBlob
    tools: dict[str, str]  # rate tools found: "wrk" (GET), "ab" (HEAD); empty: python
    notes: list[str] = field(default_factory=list)
    load_log: list[dict] = field(default_factory=list)  # 1-minute load at each scenario start
    # The push scenarios' samples to take in this call (run_all interleaves
    # them between the registries one sample at a time).
    push_reps: range = range(0)


def scenario_push_monolithic(reg: Registry, ctx: Context) -> list[Metric]:
    size = ctx.blob.size
    repo = f"{FEED}/blobs"
    samples = []
    with reg.connect() as conn:
        reg.detect_single_post(conn)
        for rep in ctx.push_reps:
            digest = ctx.blob.variant(1000 + rep)
            with FileSlice(ctx.blob.path, 0, size) as body:
                start = time.perf_counter()
                reg.push_blob_monolithic(conn, repo, digest, body, size)
                samples.append(size / MiB / (time.perf_counter() - start))
            reg.pulled = (repo, digest)
    how = "one POST ?digest=" if reg.single_post else "POST, then PUT ?digest= with the body"
    return [Metric("push_mono", f"blob push, monolithic ({ctx.sizes.blob_mib} MiB)", "MiB/s",
                   statistics.median(samples), True, samples, how)]


def scenario_push_chunked(reg: Registry, ctx: Context) -> list[Metric]:
    size, chunk = ctx.blob.size, ctx.sizes.chunk_mib * MiB
    repo = f"{FEED}/blobs"
    samples = []
    with reg.connect() as conn:
        for rep in ctx.push_reps:
            digest = ctx.blob.variant(2000 + rep)
            start = time.perf_counter()
            location = reg.start_upload(conn, repo)
            offset = 0
            while offset < size:
                n = min(chunk, size - offset)
                with FileSlice(ctx.blob.path, offset, n) as body:
                    resp = conn.request("PATCH", location, body=body, expect=(202,), headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(n),
                        "Content-Range": f"{offset}-{offset + n - 1}"})
                location = split_location(resp.headers["Location"])
                offset += n
            reg.finish_upload(conn, location, digest)
            samples.append(size / MiB / (time.perf_counter() - start))
    return [Metric("push_chunked",
                   f"blob push, chunked ({ctx.sizes.chunk_mib} MiB PATCHes)", "MiB/s",
                   statistics.median(samples), True, samples)]


def scenario_pull(reg: Registry, ctx: Context) -> list[Metric]:
    if reg.pulled is None:  # the push scenarios did not run: push one blob now
        digest = ctx.blob.variant(3000)
        with reg.connect() as conn, FileSlice(ctx.blob.path, 0, ctx.blob.size) as body:
            if reg.single_post is None:
                reg.detect_single_post(conn)
            reg.push_blob_monolithic(conn, f"{FEED}/blobs", digest, body, ctx.blob.size)
        reg.pulled = (f"{FEED}/blobs", digest)
    repo, digest = reg.pulled
    path = f"/v2/{repo}/blobs/{digest}"
    metrics = []
    with reg.connect() as conn:
        for verify in (False, True):
            samples = [get_throughput(conn, path, ctx.blob.size, digest if verify else None)
                       for _ in range(ctx.sizes.pull_reps)]
            metrics.append(Metric(
                "pull_verify" if verify else "pull",
                f"blob pull{', client sha256 check' if verify else ''}", "MiB/s",
                statistics.median(samples), True, samples))
    return metrics


def scenario_small_images(reg: Registry, ctx: Context) -> list[Metric]:
    s = ctx.sizes
    metrics = []
    # The judged rows send each blob whole in its PUT (containerd); the last,
    # informational, sends it in a PATCH first (docker).
    for clients, per_client, patch in ((1, s.images_one, False),
                                       (s.clients, s.images_per_client, False),
                                       (1, s.images_one, True)):
        flow = "patch" if patch else "put"
        images = [[Image.make(f"{flow}-{clients}-{c}-{i}") for i in range(per_client)]
                  for c in range(clients)]
        conns = [reg.connect() for _ in range(clients)]
        cpu0 = reg.cpu_seconds()

        def worker(c: int) -> None:
            for i, image in enumerate(images[c]):
                image.push(reg, conns[c], f"{FEED}/img{flow}{clients}x{c}", f"v{i}", patch)

        try:
            start = time.perf_counter()
            run_threads(clients, worker, "push")
            elapsed = time.perf_counter() - start
        finally:
            for conn in conns:
                conn.close()
        cpu1 = reg.cpu_seconds()
        steps = "HEAD+POST+PATCH+PUT" if patch else "HEAD+POST+PUT"
        note = f"{clients * per_client} images; per blob {steps}, then manifest PUT"
        if cpu0 is not None and cpu1 is not None:
            note += f"; server CPU {cpu1 - cpu0:.2f} s"
        key = f"image_push_{'one' if clients == 1 else 'many'}{'_patch' if patch else ''}"
        label = f"small-image push, {clients} client{'s' if clients > 1 else ''}"
        metrics.append(Metric(key, label + (", PATCH (docker)" if patch else ""), "images/s",
                              clients * per_client / elapsed, True, note=note))
    return metrics


def _hot_image(reg: Registry) -> Image:
    """One image tagged `latest` in bench/hot, for the request-rate runs."""
    image = Image.make("hot")
    with reg.connect() as conn:
        image.push(reg, conn, f"{FEED}/hot", "latest")
    return image


def _rate_metrics(key: str, label: str, ctx: Context,
                  rate: tuple[float, float, float, str]) -> list[Metric]:
    rps, p50, p99, note = rate
    conns = ctx.sizes.connections
    return [Metric(f"{key}_rate", f"{label}, {conns} conns", "req/s", rps, True, note=note),
            Metric(f"{key}_p50", f"{label} p50 latency", "ms", p50, False),
            Metric(f"{key}_p99", f"{label} p99 latency", "ms", p99, False)]


def scenario_manifest_get(reg: Registry, ctx: Context) -> list[Metric]:
    _hot_image(reg)
    measure = rate_with_wrk if "wrk" in ctx.tools else rate_with_python
    rate = measure(reg, ctx, f"/v2/{FEED}/hot/manifests/latest", "GET",
                   {"Accept": MANIFEST_ACCEPT})
    return _rate_metrics("manifest_get", "manifest GET by tag", ctx, rate)


def scenario_blob_head(reg: Registry, ctx: Context) -> list[Metric]:
    image = _hot_image(reg)
    measure = rate_with_ab if "ab" in ctx.tools else rate_with_python
    rate = measure(reg, ctx, f"/v2/{FEED}/hot/blobs/{image.blobs[0][0]}", "HEAD", {})
    return _rate_metrics("blob_head", "blob HEAD", ctx, rate)


def scenario_tag_list(reg: Registry, ctx: Context) -> list[Metric]:
    s = ctx.sizes
    repo = f"{FEED}/tags"
    image = _hot_image(reg)
    with reg.connect() as conn:
        for digest, data in image.blobs:
            reg.mount_blob(conn, repo, digest, f"{FEED}/hot", data)
    tags = [f"t{i:05d}" for i in range(s.tags)]
    setup = parallel_items(reg, s.setup_threads, tags,
                           lambda conn, tag: reg.put_manifest(conn, repo, tag, image.manifest))
    expected = sorted(tags)
    whole, paged = [], []
    overflow = False
    with reg.connect() as conn:
        for _ in range(s.list_reps):
            start = time.perf_counter()
            names, _, _ = reg.walk_pages(conn, f"/v2/{repo}/tags/list", "tags")
            whole.append((time.perf_counter() - start) * 1000)
            if sorted(names) != expected:
                raise BenchError(f"{reg.name}: tag list has {len(names)} tags, "
                                 f"expected {len(expected)}")
            start = time.perf_counter()
            names, requests, over = reg.walk_pages(conn, f"/v2/{repo}/tags/list?n={s.tag_page}",
                                                   "tags")
            paged.append((time.perf_counter() - start) * 1000)
            overflow |= over
            if sorted(names) != expected:
                raise BenchError(f"{reg.name}: paginated tag list has {len(names)} tags "
                                 f"({requests} requests), expected {len(expected)}")
    paged_note = (f"{requests} requests" if not overflow else
                  f"n ignored: {requests} request(s) returned all tags")
    paged_incomparable = "the registry ignores n" if overflow else ""
    return [
        Metric("tag_put", f"manifest PUT by tag (setup, {s.setup_threads} clients)", "tags/s",
               s.tags / setup, True),
        Metric("tags_whole", f"tag list, {s.tags} tags, whole", "ms",
               statistics.median(whole), False, whole),
        Metric("tags_paged", f"tag list, {s.tags} tags, n={s.tag_page} pages", "ms",
               statistics.median(paged), False, paged, paged_note, paged_incomparable),
    ]


def scenario_catalog(reg: Registry, ctx: Context) -> list[Metric]:
    s = ctx.sizes
    image = _hot_image(reg)

    def fill(conn: Conn, i: int) -> None:
        repo = f"{FEED}/r{i:05d}"
        for digest, data in image.blobs:
            reg.mount_blob(conn, repo, digest, f"{FEED}/hot", data)
        reg.put_manifest(conn, repo, "latest", image.manifest)

    setup = parallel_items(reg, s.setup_threads, list(range(s.repos)), fill)
    samples = []
    with reg.connect() as conn:
        for _ in range(s.list_reps):
            start = time.perf_counter()
            names, requests, _ = reg.walk_pages(conn, f"/v2/_catalog?n={s.catalog_page}",
                                                "repositories")
            samples.append((time.perf_counter() - start) * 1000)
    ours = [n for n in names if re.fullmatch(rf"{FEED}/r\d{{5}}", n)]
    if len(ours) != s.repos or len(set(names)) != len(names):
        raise BenchError(f"{reg.name}: catalog lists {len(ours)} of the {s.repos} "
                         f"repositories ({len(names)} names, {len(set(names))} distinct)")
    return [
        Metric("repo_create", f"repository create (setup, {s.setup_threads} clients)", "repos/s",
               s.repos / setup, True, note="mount config and layers, PUT manifest"),
        Metric("catalog", f"catalog, {len(names)} repos, n={s.catalog_page} pages", "ms",
               statistics.median(samples), False, samples, f"{requests} requests"),
    ]


def scenario_delete(reg: Registry, ctx: Context) -> list[Metric]:
    s = ctx.sizes
    repo = f"{FEED}/del"
    base = _hot_image(reg)
    layers = [data for _, data in base.blobs[:3]]
    config = base.blobs[3][1]
    images = [Image.from_parts(layers, config, annotation=str(i)) for i in range(s.deletes)]
    with reg.connect() as conn:
        for digest, data in base.blobs:
            reg.mount_blob(conn, repo, digest, f"{FEED}/hot", data)
    parallel_items(reg, s.setup_threads, images,
                   lambda conn, im: reg.put_manifest(conn, repo, im.digest, im.manifest))
    with reg.connect() as conn:
        start = time.perf_counter()
        for image in images:
            reg.delete_manifest(conn, repo, image.digest)
        elapsed = time.perf_counter() - start
        gone = conn.request("GET", f"/v2/{repo}/manifests/{images[0].digest}",
                            headers={"Accept": MANIFEST_ACCEPT}, expect=(200, 404))
    if gone.status != 404:
        raise BenchError(f"{reg.name}: a deleted manifest is still served")
    return [Metric("delete", "manifest DELETE by digest, 1 client", "deletes/s",
                   s.deletes / elapsed, True, note=f"{s.deletes} manifests")]


def _gc_metric(seconds: float, blobs: int, removed: int, note: str) -> list[Metric]:
    return [Metric("gc", f"GC, {blobs:,} blobs ({removed:,} unreferenced)", "s", seconds, False,
                   note=note)]


def _gc_registryctl(ctx: Context) -> list[Metric]:
    """bench/gc_bench (built beside registryctl): the real collector on a data
    directory populated through the metadata layer, a second thread pushing."""
    if ctx.args.registryctl.startswith("http"):
        raise BenchError("gc needs a registryctl build directory (bench/gc_bench), not a URL")
    tool = os.path.join(os.path.dirname(ctx.args.registryctl), "bench", "gc_bench")
    if not os.path.exists(tool):
        raise BenchError(f"{tool} is missing: build it (ninja -C build gc_bench)")
    env = dict(os.environ, TMPDIR=ctx.workdir)
    r = subprocess.run([tool, str(ctx.sizes.gc_blobs)], capture_output=True, text=True, env=env)
    found = re.search(r"gc: removed (\d+) blobs .* in ([0-9.]+)s; (\d+) pushes meanwhile, "
                      r"slowest ([0-9.]+) ms", r.stdout)
    if r.returncode != 0 or not found:
        raise BenchError(f"gc_bench failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    removed, seconds, pushes, slowest = found.groups()
    return _gc_metric(float(seconds), ctx.sizes.gc_blobs, int(removed),
                      f"online, while {pushes} blob pushes went on (slowest {float(slowest):.0f} ms); "
                      "store populated directly (bench/gc_bench.cpp)")


def _gc_distribution(ctx: Context) -> list[Metric]:
    """The same shape written in Distribution's filesystem layout, collected by
    `docker-registry garbage-collect` (offline: Distribution has no online GC)."""
    root = os.path.join(ctx.workdir, "gc-distribution")
    v2 = os.path.join(root, "docker", "registry", "v2")
    repo = os.path.join(v2, "repositories", FEED, "app")

    def write(path: str, data: bytes) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def put_blob(data: bytes) -> str:
        hexd = hashlib.sha256(data).hexdigest()
        write(os.path.join(v2, "blobs", "sha256", hexd[:2], hexd, "data"), data)
        return hexd

    group: list[tuple[str, int]] = []
    manifests = 0
    for i in range(ctx.sizes.gc_blobs):
        data = f"blob {i}".encode()
        hexd = put_blob(data)
        if i % 2:
            continue
        write(os.path.join(repo, "_layers", "sha256", hexd, "link"), f"sha256:{hexd}".encode())
        group.append((hexd, len(data)))
        if len(group) == 10:
            (config, config_size), layers = group[0], group[1:]
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": f"sha256:{config}", "size": config_size},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": f"sha256:{h}", "size": n} for h, n in layers]}).encode()
            mhex = put_blob(manifest)
            link = f"sha256:{mhex}".encode()
            write(os.path.join(repo, "_manifests", "revisions", "sha256", mhex, "link"), link)
            tag = os.path.join(repo, "_manifests", "tags", f"t{i}")
            write(os.path.join(tag, "current", "link"), link)
            write(os.path.join(tag, "index", "sha256", mhex, "link"), link)
            manifests += 1
            group = []
    config = os.path.join(ctx.workdir, "gc-distribution.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                f"    rootdirectory: {root}\n  delete:\n    enabled: true\n")
    os.sync()
    start = time.perf_counter()
    r = subprocess.run([ctx.args.docker_registry_binary, "garbage-collect", config],
                       capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if r.returncode != 0:
        raise BenchError(f"docker-registry garbage-collect failed ({r.returncode}): "
                         f"{r.stderr.strip()[-500:]}")
    left = sum(len(names) for _, _, names in os.walk(os.path.join(v2, "blobs")))
    removed = ctx.sizes.gc_blobs + manifests - left
    if removed != ctx.sizes.gc_blobs // 2:
        raise BenchError(f"docker-registry garbage-collect removed {removed} blobs, "
                         f"expected {ctx.sizes.gc_blobs // 2}")
    return _gc_metric(seconds, ctx.sizes.gc_blobs, removed,
                      f"offline (garbage-collect); {manifests} manifests are blobs here too; "
                      "layout written directly")


def scenario_gc(reg: Registry, ctx: Context) -> list[Metric]:
    # Each collects its own populated store, not the server under test's.
    return _gc_registryctl(ctx) if reg.name == "registryctl" else _gc_distribution(ctx)


SCENARIOS: dict[str, Callable[[Registry, Context], list[Metric]]] = {
    "push": scenario_push_monolithic,
    "chunked": scenario_push_chunked,
    "pull": scenario_pull,
    "images": scenario_small_images,
    "manifest-get": scenario_manifest_get,
    "blob-head": scenario_blob_head,
    "tags": scenario_tag_list,
    "catalog": scenario_catalog,
    "delete": scenario_delete,
    "gc": scenario_gc,
}

@dataclass
class Target:
    """One registry under test and what was measured on it."""
    role: str                  # "registryctl" or "reference"
    display: str
    reg: Registry
    server: Server | None
    metrics: list[Metric] = field(default_factory=list)
    memory_start: dict[str, float] | None = None


def warm_memory(mib: int) -> None:
    """Touches 1.25 times the `mib` MiB about to be written into the page
    cache, as anonymous memory, and frees it again. On a virtual
    machine whose balloon reports free pages to the host, memory that was not
    touched lately costs the guest a fault into the host on first use: a 256 MiB
    write into the page cache then costs several times its usual system time.
    Whichever registry ran second in a push scenario paid for it (registryctl's
    chunked push measured 0.8 s of server CPU when it ran first, 3.2 s after
    Distribution's). Done just before each push scenario for each registry, so
    that both write into memory the guest holds."""
    if mib <= 0:
        return
    size = (mib * 5 // 4) << 20
    buf = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        buf[offset] = 1
    buf.close()


# Scenarios that write push_reps blobs of blob_mib MiB each.
PUSH_SCENARIOS = ("push", "chunked")


def measure(t: Target, ctx: Context, name: str) -> tuple[list[Metric], float | None]:
    """Runs one scenario on one registry; returns its metrics and the server's
    CPU seconds over it (None where not measured: gc runs offline)."""
    reg = t.reg
    os.sync()  # no dirty pages of the previous measurement written back during this one
    if name in PUSH_SCENARIOS:
        warm_memory(len(ctx.push_reps) * ctx.sizes.blob_mib)
    cpu0 = reg.cpu_seconds()
    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    ctx.load_log.append({"registry": t.display, "scenario": name, "load1": load})
    log(f"{t.display}: {name} (load {load:.2f})")
    try:
        result = SCENARIOS[name](reg, ctx)
        if t.server is not None:
            t.server.check_alive()
    except (BenchError, OSError, http.client.HTTPException) as e:
        if t.server is not None:
            t.server.check_alive()  # a crash explains the error better, with the log
        raise BenchError(f"{t.display}, scenario {name}: {type(e).__name__}: {e}") from e
    cpu1 = reg.cpu_seconds()
    log(f"{t.display}: {name} done in {time.perf_counter() - t0:.1f} s: " + ", ".join(
        f"{m.value:.4g} {m.unit}" for m in result))
    measured = (result and cpu0 is not None and cpu1 is not None and name != "gc"
                and not any("server CPU" in m.note for m in result))
    return result, (cpu1 - cpu0 if measured else None)


def record(t: Target, metrics: list[Metric], cpu: float | None) -> None:
    if metrics and cpu is not None:
        m = metrics[0]
        m.note = "; ".join(x for x in (m.note, f"server CPU in scenario {cpu:.2f} s") if x)
    t.metrics.extend(metrics)


def run_scenario(t: Target, ctx: Context, name: str) -> None:
    ctx.push_reps = range(ctx.sizes.push_reps)
    record(t, *measure(t, ctx, name))


def run_push_interleaved(order: list[Target], ctx: Context, name: str) -> None:
    """Takes a push scenario's samples one at a time, alternating the
    registries (A B B A A B ...). This VM's disk takes its first few hundred
    MiB at several times its sustained rate and refills that burst over
    time: with all of one registry's samples in a row, whichever went first
    pushed into the burst and the other into the sustained rate (chunked push
    measured 1.7x and 3.8x in two full runs three hours apart)."""
    taken: dict[str, list[tuple[list[Metric], float | None]]] = {t.display: [] for t in order}
    for rep in range(ctx.sizes.push_reps):
        ctx.push_reps = range(rep, rep + 1)
        for t in (order if rep % 2 == 0 else order[::-1]):
            taken[t.display].append(measure(t, ctx, name))
    for t in order:
        runs = taken[t.display]
        merged = []
        for metrics in zip(*(m for m, _ in runs)):
            samples = [x for m in metrics for x in m.samples]
            merged.append(replace(metrics[0], value=statistics.median(samples), samples=samples))
        cpus = [cpu for _, cpu in runs]
        record(t, merged, None if None in cpus else sum(cpus))


def run_all(targets: list[Target], ctx: Context, selected: list[str]) -> None:
    """Runs every scenario on every registry, interleaved scenario by scenario
    (alternating which registry goes first), so that a load that comes and goes
    on the machine weighs on both alike."""
    for t in targets:
        t.memory_start = t.reg.memory()
    for i, name in enumerate(selected):
        order = targets if i % 2 == 0 else targets[::-1]
        if name in PUSH_SCENARIOS:
            run_push_interleaved(order, ctx, name)
            continue
        for t in order:
            run_scenario(t, ctx, name)
    for t in targets:
        end = t.reg.memory()
        if t.memory_start and end:
            t.metrics += [
                Metric("rss_start", "server RSS at start", "MiB", t.memory_start["VmRSS"], False),
                Metric("rss_end", "server RSS at end", "MiB", end["VmRSS"], False),
                Metric("rss_peak", "server peak RSS (VmHWM)", "MiB", end["VmHWM"], False),
            ]


# --------------------------------------------------------------------------
# Physical limits of the machine
# --------------------------------------------------------------------------

def physical_limits(ctx: Context, nginx: str | None) -> list[Metric]:
    s = ctx.sizes
    out: list[Metric] = []

    buf = os.urandom(MiB)
    h = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(s.sha_mib):
        h.update(buf)
    out.append(Metric("limit_sha256", "SHA-256, one core (hashlib)", "MiB/s",
                      s.sha_mib / (time.perf_counter() - start), True))

    # The push scenarios' own pattern: push_reps files of blob_mib MiB, each
    # written and then fsynced, median reported. This machine's disk takes a
    # first burst of a few hundred MiB several times faster than what follows
    # (979 MB/s, then 204-255 MB/s for 256 MiB dd conv=fsync runs in a row), so
    # a single write would measure the burst and the pushes the sustained rate.
    warm_memory(s.push_reps * s.blob_mib)
    target = os.path.join(ctx.workdir, "fsync-test.tmp")
    block = os.urandom(MiB)
    write_samples = []
    for rep in range(s.push_reps):
        path = f"{target}.{rep}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            start = time.perf_counter()
            for _ in range(s.blob_mib):
                os.write(fd, block)
            os.fsync(fd)
            write_samples.append(s.blob_mib / (time.perf_counter() - start))
        finally:
            os.close(fd)
    for rep in range(s.push_reps):
        os.unlink(f"{target}.{rep}")
    out.append(Metric("limit_write",
                      f"write + fsync, {s.push_reps} x {s.blob_mib} MiB (median)", "MiB/s",
                      statistics.median(write_samples), True, write_samples))

    # Small durable writes: what each committed blob or manifest costs at least.
    n = 100
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        fsync_ms = (time.perf_counter() - start) / n * 1000
    finally:
        os.close(fd)
        os.unlink(target)
    out.append(Metric("limit_fsync", "4 KiB write + fsync", "ms", fsync_ms, False))

    server = DiscardServer(ctx.workdir)
    try:
        server.start()
        samples = []
        with Conn(server.host, server.port) as conn:
            for _ in range(max(3, s.push_reps)):
                with FileSlice(ctx.blob.path, 0, ctx.blob.size) as body:
                    start = time.perf_counter()
                    conn.request("PUT", "/", body=body,
                                 headers={"Content-Length": str(ctx.blob.size)})
                    samples.append(ctx.blob.size / MiB / (time.perf_counter() - start))
        out.append(Metric("limit_upload", "loopback HTTP upload into a discarding server "
                          "(this client)", "MiB/s", statistics.median(samples), True, samples))
    finally:
        server.stop()

    if nginx is None:
        ctx.notes.append("loopback HTTP limit skipped: nginx is not installed "
                         "(apt-get install nginx-light)")
        return out
    server = NginxServer(ctx.workdir, nginx, ctx.blob.path)
    try:
        server.start()
        with Conn(server.host, server.port) as conn:
            samples = [get_throughput(conn, f"/{server.file_name}", ctx.blob.size, None)
                       for _ in range(max(3, s.pull_reps))]
        out.append(Metric("limit_http", "loopback HTTP GET of a static file (nginx, "
                          "this client)", "MiB/s", statistics.median(samples), True, samples))
        # One request at a time on one connection, as the DELETE scenario sends
        # them: no registry answers a request faster than this round trip.
        samples = []
        with Conn(server.host, server.port) as conn:
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(s.deletes):
                    conn.request("GET", f"/{server.small_name}")
                samples.append(s.deletes / (time.perf_counter() - start))
        out.append(Metric("limit_rtt", "small GETs one at a time on one connection (nginx, "
                          "this client)", "req/s", statistics.median(samples), True, samples))
    finally:
        server.stop()
    return out


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

# key -> (minimum ratio, how the issue states it). The ratio is registryctl/reference
# for rates and reference/registryctl for times, latencies and memory (> 1: better).
TARGETS: dict[str, tuple[float, str]] = {
    "push_mono": (1.6, ">=1.6x"),
    "push_chunked": (2.0, ">=2x"),
    "pull": (1.0, ">=1.0x"),
    "pull_verify": (1.0, ">=1.0x"),
    "image_push_one": (5.0, ">=5x"),
    "image_push_many": (5.0, ">=5x"),
    "manifest_get_rate": (10.0, ">=10x"),
    "blob_head_rate": (10.0, ">=10x"),
    "tags_whole": (2.0, "time <=0.5x"),
    "tags_paged": (2.0, "time <=0.5x"),
    "catalog": (1 / 0.03, "time <=0.03x"),
    "delete": (10.0, ">=10x"),
    "gc": (1.0, "time <=1x, online"),
    "rss_end": (2.0, "RSS <=0.5x"),
    "rss_peak": (2.0, "RSS <=0.5x"),
}
# key -> maximum registryctl value (absolute targets)
ABSOLUTE_TARGETS: dict[str, tuple[float, str]] = {
    "manifest_get_p99": (5.0, "<=5 ms"),
    "blob_head_p99": (5.0, "<=5 ms"),
}


def ratio(m: Metric, ref: Metric | None) -> float | None:
    """How many times better registryctl is: > 1 is better, whatever the unit."""
    if ref is None or not m.value or not ref.value:
        return None
    return m.value / ref.value if m.higher_is_better else ref.value / m.value


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def build_rows(ours: list[Metric], ref: list[Metric] | None) -> list[dict]:
    ref_by_key = {m.key: m for m in ref or []}
    rows = []
    for m in ours:
        r = ref_by_key.get(m.key)
        adv = ratio(m, r)
        target, met = "", None
        if m.key in TARGETS:
            threshold, target = TARGETS[m.key]
            met = None if adv is None else adv >= threshold
            if m.incomparable or (r and r.incomparable):
                target, met = target + " (n/a)", None
        elif m.key in ABSOLUTE_TARGETS:
            threshold, target = ABSOLUTE_TARGETS[m.key]
            met = m.value is not None and m.value <= threshold
        rows.append({"key": m.key, "scenario": m.label, "unit": m.unit,
                     "registryctl": m.value, "reference": r.value if r else None,
                     "ratio": adv, "target": target, "met": met,
                     "registryctl_samples": m.samples, "reference_samples": r.samples if r else [],
                     "registryctl_note": m.note, "reference_note": r.note if r else ""})
    return rows


def print_table(rows: list[dict], ref_name: str | None, limits: list[Metric]) -> None:
    ref_col = ref_name or "reference"
    header = ["scenario", "unit", "registryctl", ref_col, "ratio", "target", "met"]
    lines = [[r["scenario"], r["unit"], fmt(r["registryctl"]), fmt(r["reference"]),
              "-" if r["ratio"] is None else f"{r['ratio']:.2f}x", r["target"],
              {True: "yes", False: "NO", None: ""}[r["met"]]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    print()
    print("ratio > 1: registryctl is better (registryctl/reference for rates,")
    print("reference/registryctl for times, latencies and memory)")
    print()
    for i, line in enumerate([header] + lines):
        print("  ".join(str(x).ljust(w) if j < 2 else str(x).rjust(w)
                        for j, (x, w) in enumerate(zip(line, widths))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    notes = [(r["scenario"], who, r[f"{who}_note"]) for r in rows
             for who in ("registryctl", "reference") if r[f"{who}_note"]]
    if notes:
        print()
        for scenario, who, note in notes:
            print(f"  {scenario} [{ref_col if who == 'reference' else who}]: {note}")
    if limits:
        print()
        print("physical limits of this machine and this client:")
        width = max(len(m.label) for m in limits)
        for m in limits:
            print(f"  {m.label.ljust(width)}  {fmt(m.value):>8} {m.unit}")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark registryctl against a reference registry over the "
                    "registry HTTP API V2.")
    p.add_argument("--quick", action="store_true",
                   help="small sizes and short runs (under a minute)")
    p.add_argument("--registryctl", default=None,
                   help="registryctl binary to start (default: build/registryctl next to "
                        "bench/), or http://127.0.0.1:PORT of a running one whose feed "
                        f"'{FEED}' exists and is empty")
    p.add_argument("--reference", default="docker-registry",
                   help="'docker-registry' (start Debian's CNCF Distribution), 'none', or "
                        "http://127.0.0.1:PORT of a running, empty registry")
    p.add_argument("--docker-registry-binary", default="/usr/bin/docker-registry")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help=f"comma-separated subset of: {','.join(SCENARIOS)}")
    p.add_argument("--rate-tool", choices=("native", "python"), default="native",
                   help="clients for the request-rate runs: native = wrk for GET and ab for "
                        "HEAD; python = threads with this script's client (a client-bound floor)")
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--no-limits", action="store_true", help="skip the physical-limits line")
    p.add_argument("--workdir", help="parent of the temporary directory (default: $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return p.parse_args(argv)


def parse_url(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise BenchError(f"expected http://HOST:PORT, got {url!r}")
    return parts.hostname, parts.port


def make_target(spec: str, kind: str, workdir: str, args: argparse.Namespace
                ) -> tuple[Server | None, str, tuple[str, int] | None]:
    """(server to start or None, display name, address of a running registry or None)."""
    if spec.startswith("http://"):
        return None, f"{kind} at {spec}", parse_url(spec)
    if kind == "registryctl":
        if not (os.path.isfile(spec) and os.access(spec, os.X_OK)):
            raise BenchError(f"registryctl binary not found at {spec}: build it "
                             "(cd build && ninja) or pass --registryctl PATH")
        return RegistryctlServer(workdir, os.path.abspath(spec)), "registryctl", None
    if spec != "docker-registry":
        raise BenchError(f"--reference {spec!r}: expected docker-registry, none or "
                         "http://HOST:PORT")
    binary = args.docker_registry_binary
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise BenchError(f"{binary} not found: install Debian's CNCF Distribution with "
                         "'apt-get install docker-registry', or pass --reference none")
    return DistributionServer(workdir, binary), "docker-registry", None


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    selected = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in selected if s not in SCENARIOS]
    if unknown:
        raise BenchError(f"unknown scenario(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(SCENARIOS)}")
    if args.registryctl is None:
        args.registryctl = os.path.join(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))), "build", "registryctl")

    tools: dict[str, str] = {}
    if args.rate_tool == "native":
        needed = {"manifest-get": ("wrk", "wrk"), "blob-head": ("ab", "apache2-utils")}
        for scenario, (tool, package) in needed.items():
            if scenario not in selected:
                continue
            found = shutil.which(tool)
            if found is None:
                raise BenchError(f"{tool} is not installed: 'apt-get install {package}', or "
                                 "pass --rate-tool python (client-bound, far lower rates)")
            tools[tool] = found

    specs = [("registryctl", args.registryctl)]
    if args.reference != "none":
        specs.append(("reference", args.reference))
    for role, spec in specs:  # fail before any work when a binary is missing
        make_target(spec, role, tempfile.gettempdir(), args)

    started: list[Server] = []
    workdir = tempfile.mkdtemp(prefix="registry-bench-", dir=args.workdir)
    try:
        load = os.getloadavg()
        log(f"{'quick' if args.quick else 'full'} run in {workdir}; load average "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores")
        log(f"creating a {sizes.blob_mib} MiB random blob")
        blob = BigBlob.create(os.path.join(workdir, "blob.bin"), sizes.blob_mib * MiB)
        ctx = Context(args, sizes, workdir, blob, tools)

        limits: list[Metric] = []
        if not args.no_limits:
            log("physical limits")
            limits = physical_limits(ctx, shutil.which("nginx") or
                                     (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx"
                                      or None))

        targets: list[Target] = []
        for role, spec in specs:
            server, display, address = make_target(spec, role, workdir, args)
            if server is not None:
                log(f"starting {display}")
                started.append(server)
                server.start()
                if getattr(server, "identity", None):
                    ctx.notes.append(f"{display}: {server.identity}")
                reg = server.registry()
            else:
                reg = Registry(display, *address)
            reg.name = display
            targets.append(Target(role, display, reg, server))
        run_all(targets, ctx, selected)
        for server in started:
            server.stop()
        by_role = {t.role: t for t in targets}
        names = {t.role: t.display for t in targets}

        rows = build_rows(by_role["registryctl"].metrics,
                          by_role["reference"].metrics if "reference" in by_role else None)
        load_end = os.getloadavg()
        if args.json:
            with open(args.json, "w") as f:
                json.dump({
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
                    "machine": {"cores": os.cpu_count(), "kernel": platform.release(),
                                "load_before": load, "load_after": load_end},
                    "mode": "quick" if args.quick else "full",
                    "sizes": asdict(sizes),
                    "registries": names,
                    "limits": [asdict(m) for m in limits],
                    "results": rows,
                    "load_at_scenario_start": ctx.load_log,
                    "notes": ctx.notes,
                }, f, indent=2)
            log(f"wrote {args.json}")
        print_table(rows, names.get("reference"), limits)
        print(f"\nload average before {load[0]:.2f}, after {load_end[0]:.2f}; "
              f"{os.cpu_count()} cores; {'quick' if args.quick else 'full'} mode")
        for note in ctx.notes:
            print(f"note: {note}")
        return 0
    finally:
        for server in started:
            server.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            log(f"removing {workdir}")
            shutil.rmtree(workdir, ignore_errors=True)


def _terminate(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print(f"registry_bench: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("registry_bench: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
