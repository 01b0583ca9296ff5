#!/usr/bin/env python3
"""Blob push and pull through `registryctl serve` into a feed on each kind of
store, side by side in one run (issue 7): the data directory, S3 (a throwaway
Ceph radosgw) and Azure Blob (Azurite), both started here on loopback ports,
each with pulls redirected to the store (the default) and proxied through the
server (`store add --proxy`). Next to them, the same bytes sent straight to
each store with one plain PUT and GET, which is the ceiling the registry
works under.

    python3 bench/store_bench.py                 # 256 MiB, 3 runs each: 5 to 10 minutes
    python3 bench/store_bench.py --blob-mib 32 --reps 1

Needs what `scripts/install-deps.sh --test` installs (ceph, radosgw, curl,
Azurite) and a built `build/registryctl`. The scenarios are those of
registry_bench.py (push, chunked, pull); see bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from email.utils import formatdate

import registry_bench as rb

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RADOSGW = os.path.join(ROOT, "tests", "support", "radosgw.sh")
AZURITE = os.path.join(ROOT, "tests", "support", "azurite", "run-with-azurite.sh")
# Azurite's published development account.
AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
          "K1SZFPTOtr/KBHBeksoGMGw==")
CONTAINER = "bench"
METRICS = [("push_mono", "push, monolithic"), ("push_chunked", "push, 8 MiB PATCHes"),
           ("pull", "pull"), ("pull_verify", "pull + client sha256")]


def azure_request(endpoint: str, method: str, path: str, query: dict[str, str],
                  length: int = 0, extra: dict[str, str] | None = None) -> tuple[str, dict]:
    """The URL and Shared Key headers of one Azurite request (path below the account)."""
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2024-11-04"}
    headers.update(extra or {})
    canonical_headers = "".join(f"{k}:{headers[k]}\n" for k in sorted(headers))
    resource = f"/{AZ_ACCOUNT}/{AZ_ACCOUNT}{path}" + "".join(
        f"\n{k}:{query[k]}" for k in sorted(query))
    to_sign = "\n".join([method, "", "", str(length) if length else "", "", "", "", "", "", "",
                         "", ""]) + "\n" + canonical_headers + resource
    signature = base64.b64encode(hmac.new(base64.b64decode(AZ_KEY), to_sign.encode(),
                                          hashlib.sha256).digest()).decode()
    headers["Authorization"] = f"SharedKey {AZ_ACCOUNT}:{signature}"
    url = f"{endpoint}{path}" + ("?" + urllib.parse.urlencode(query) if query else "")
    return url, headers


def http_call(url: str, method: str, headers: dict, body=None) -> http.client.HTTPResponse:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600, blocksize=rb.BUF)
    conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=headers)
    return conn.getresponse()


def direct_azure(endpoint: str, blob: rb.BigBlob) -> tuple[float, float]:
    """One Put Blob and one GET of the whole file; MiB/s each."""
    path = f"/{CONTAINER}/direct.bin"
    url, headers = azure_request(endpoint, "PUT", path, {}, blob.size, {"x-ms-blob-type": "BlockBlob"})
    headers["Content-Length"] = str(blob.size)
    start = time.perf_counter()
    with open(blob.path, "rb") as f:
        resp = http_call(url, "PUT", headers, f)
        resp.read()
    put = blob.size / rb.MiB / (time.perf_counter() - start)
    if resp.status != 201:
        raise rb.BenchError(f"Azure Put Blob answered {resp.status}")
    url, headers = azure_request(endpoint, "GET", path, {})
    start = time.perf_counter()
    resp = http_call(url, "GET", headers)
    total, _ = rb.read_body(resp, False)
    get = blob.size / rb.MiB / (time.perf_counter() - start)
    if total != blob.size:
        raise rb.BenchError(f"Azure GET returned {total} bytes")
    return put, get


def direct_s3(s3: dict[str, str], blob: rb.BigBlob) -> tuple[float, float]:
    """One curl PUT and GET of the whole file, signed with SigV4; MiB/s each."""
    url = f"{s3['endpoint']}/{s3['bucket']}/direct.bin"
    sign = ["--aws-sigv4", f"aws:amz:{s3['region']}:s3",
            "--user", f"{s3['access_key_id']}:{s3['secret_access_key']}",
            "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]
    rates = []
    for extra in (["-T", blob.path], ["-o", "/dev/null"]):
        r = subprocess.run(["curl", "-sS", "-f", "-w", "%{time_total}"] + sign + extra + [url],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise rb.BenchError(f"curl against radosgw failed: {r.stderr.strip()}")
        rates.append(blob.size / rb.MiB / float(r.stdout.strip()))
    return rates[0], rates[1]


def start_radosgw(workdir: str) -> dict[str, str]:
    rb.log("starting Ceph radosgw")
    r = subprocess.run([RADOSGW, "start", os.path.join(workdir, "radosgw"), str(os.getpid())],
                       capture_output=True, text=True, timeout=240)
    if r.returncode != 0:
        raise rb.BenchError(f"radosgw did not start: {r.stderr.strip()[-2000:]}")
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--blob-mib", type=int, default=256)
    p.add_argument("--reps", type=int, default=3, help="runs per scenario (median reported)")
    p.add_argument("--registryctl", default=os.path.join(ROOT, "build", "registryctl"))
    p.add_argument("--stores", default="filesystem,S3,S3 --proxy,Azure,Azure --proxy",
                   help="comma-separated subset of the feeds to measure")
    p.add_argument("--scenarios", default="push,chunked,pull",
                   help="comma-separated subset of push,chunked,pull")
    p.add_argument("--no-direct", action="store_true",
                   help="skip the plain PUT and GET straight to each store")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    azurite = os.environ.get("AZURITE_ENDPOINT")
    if not azurite:  # Azurite runs around this script, like around the tests
        os.execv(AZURITE, [AZURITE, sys.executable, os.path.abspath(__file__)] + argv)
    if not os.access(args.registryctl, os.X_OK):
        raise rb.BenchError(f"{args.registryctl} not found: build it first")

    workdir = tempfile.mkdtemp(prefix="store-bench-")
    try:
        s3 = start_radosgw(workdir)
        url, headers = azure_request(azurite, "PUT", f"/{CONTAINER}", {"restype": "container"})
        status = http_call(url, "PUT", headers).status
        if status not in (201, 409):
            raise rb.BenchError(f"creating the Azurite container answered {status}")
        # Secrets reach the CLI and the servers through the environment.
        os.environ.update({"AWS_ACCESS_KEY_ID": s3["access_key_id"],
                           "AWS_SECRET_ACCESS_KEY": s3["secret_access_key"],
                           "AZURE_STORAGE_KEY": AZ_KEY})
        s3_args = ["--type", "s3", "--endpoint", s3["endpoint"], "--region", s3["region"],
                   "--bucket", s3["bucket"], "--addressing", "path"]
        az_args = ["--type", "azure", "--endpoint", azurite, "--account", AZ_ACCOUNT,
                   "--container", CONTAINER]
        stores = [("filesystem", [], []),
                  ("S3", [["store", "add", "obj", "--prefix", "r"] + s3_args], ["--store", "obj"]),
                  ("S3 --proxy", [["store", "add", "obj", "--prefix", "p", "--proxy"] + s3_args],
                   ["--store", "obj"]),
                  ("Azure", [["store", "add", "obj", "--prefix", "r"] + az_args], ["--store", "obj"]),
                  ("Azure --proxy", [["store", "add", "obj", "--prefix", "p", "--proxy"] + az_args],
                   ["--store", "obj"])]

        wanted = [n.strip() for n in args.stores.split(",")]
        unknown = [n for n in wanted if n not in [name for name, _, _ in stores]]
        if unknown:
            raise rb.BenchError(f"unknown store(s) {unknown}; see --help")
        stores = [entry for entry in stores if entry[0] in wanted]
        scenarios = [n.strip() for n in args.scenarios.split(",")]
        if any(n not in ("push", "chunked", "pull") for n in scenarios):
            raise rb.BenchError(f"--scenarios takes push, chunked and pull, got {args.scenarios}")

        sizes = rb.Sizes(**{**rb.asdict(rb.FULL), "blob_mib": args.blob_mib,
                            "push_reps": args.reps, "pull_reps": args.reps})
        rb.log(f"creating a {args.blob_mib} MiB random blob")
        blob = rb.BigBlob.create(os.path.join(workdir, "blob.bin"), args.blob_mib * rb.MiB)
        ctx = rb.Context(argparse.Namespace(), sizes, workdir, blob, {})
        load = os.getloadavg()

        results: dict[str, dict[str, float]] = {}
        for name, prepare, feed_args in stores:
            server = rb.RegistryctlServer(tempfile.mkdtemp(dir=workdir), args.registryctl,
                                          prepare, feed_args)
            server.name = "registryctl"
            try:
                server.start()
                target = rb.Target("registryctl", name, server.registry(), server)
                for scenario in scenarios:
                    rb.run_scenario(target, ctx, scenario)
            finally:
                server.stop()
            results[name] = {m.key: m.value for m in target.metrics}
        direct = {}
        if not args.no_direct:
            rb.log("plain PUT and GET straight to each store")
            direct = {"S3": direct_s3(s3, blob), "Azure": direct_azure(azurite, blob)}

        names = [name for name, _, _ in stores]
        print(f"\nBlob of {args.blob_mib} MiB through registryctl serve, MiB/s "
              f"(median of {args.reps}; x = ratio to the filesystem feed)\n")
        print(f"| {'':22} | " + " | ".join(f"{n:>16}" for n in names) + " |")
        print(f"|{'-' * 24}|" + "|".join("-" * 18 for _ in names) + "|")
        for key, label in METRICS:
            base = results.get("filesystem", {}).get(key)
            cells = []
            for n in names:
                v = results[n].get(key)
                cell = "" if v is None else f"{v:.0f}"
                if v is not None and base and n != "filesystem":
                    cell += f" ({v / base:.2f}x)"
                cells.append(f"{cell:>16}")
            print(f"| {label:22} | " + " | ".join(cells) + " |")
        if direct:
            print("\nStraight to the store, one request each (the ceiling):")
        for n, (put, get) in direct.items():
            print(f"  {n:6} PUT {put:.0f} MiB/s, GET {get:.0f} MiB/s")
        load_end = os.getloadavg()
        print(f"\nload average before {load[0]:.2f}, after {load_end[0]:.2f}; "
              f"{os.cpu_count()} cores")
        return 0
    finally:
        subprocess.run([RADOSGW, "stop", os.path.join(workdir, "radosgw")], capture_output=True)
        if args.keep:
            rb.log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except rb.BenchError as e:
        print(f"store_bench: error: {e}", file=sys.stderr)
        sys.exit(1)
