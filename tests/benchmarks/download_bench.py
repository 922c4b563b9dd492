"""Benchmark of the download engine, as ratios against baselines measured in the same run.

    python tests/benchmarks/download_bench.py [--size-mb 256] [--rate-mb 20]

1. Parallel speed-up: a loopback server caps each connection at --rate-mb MB/s; N connections
   should reach at least 0.8 x N times one connection's throughput.
2. Uncapped throughput and client CPU: our engine (hashing MD5 + xxh3 included) against a plain
   httpx stream to disk, against the same stream hashing MD5 and fsync'd at the end (the least a
   verified, durable download does), and against `curl -o`, all fetching the same file from the
   same server; and MD5 alone over the same bytes in memory, on one core.
3. Peak memory: the real CLI fetching a file and a file four times larger; peak RSS should match.

The server runs in its own process so client CPU time is the client's alone. Machines here are
shared and noisy: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from imagenet_cli.download.transfer import Endpoint, Remote, http_client, plan_transfer, run_transfer  # noqa: E402
from tests.benchmarks.measure import run_cli  # noqa: E402
from tests.servers import FileServer  # noqa: E402

NAME = "ILSVRC2012_img_val.tar"


def serve(files: dict[str, bytes], rate: float | None, ready: Connection, stop: Connection) -> None:
    with FileServer(files) as server:
        server.faults.rate = rate
        ready.send(server.base_url)
        stop.recv()


class ServerProcess:
    def __init__(self, files: dict[str, bytes], rate: float | None = None) -> None:
        self.ready_recv, ready_send = multiprocessing.Pipe(duplex=False)
        stop_recv, self.stop_send = multiprocessing.Pipe(duplex=False)
        self.process = multiprocessing.Process(target=serve, args=(files, rate, ready_send, stop_recv), daemon=True)

    def __enter__(self) -> str:
        self.process.start()
        return str(self.ready_recv.recv())

    def __exit__(self, *exc: object) -> None:
        self.stop_send.send(None)
        self.process.join(10)


def ours(base_url: str, directory: Path, connections: int) -> tuple[float, float]:
    """Wall and client CPU seconds for our engine, hashing included."""
    shutil.rmtree(directory, ignore_errors=True)
    remote = Remote(NAME, base_url + NAME)
    wall, cpu = time.perf_counter(), time.process_time()
    with http_client(connections, {}, None) as client:
        endpoint = Endpoint(client, remote.url)
        run_transfer(plan_transfer(remote, directory, endpoint, connections), endpoint, connections)
    return time.perf_counter() - wall, time.process_time() - cpu


def plain_httpx(base_url: str, directory: Path) -> tuple[float, float]:
    """The baseline the issue names: one httpx stream written to disk, no hashing."""
    import httpx

    directory.mkdir(parents=True, exist_ok=True)
    wall, cpu = time.perf_counter(), time.process_time()
    with httpx.stream("GET", base_url + NAME) as response, open(directory / NAME, "wb") as out:
        for data in response.iter_raw():
            out.write(data)
    return time.perf_counter() - wall, time.process_time() - cpu


def httpx_md5_fsync(base_url: str, directory: Path) -> tuple[float, float]:
    """The like-for-like baseline: what the engine must do at least, in the plainest code (one
    stream, MD5 inline, the file made durable before it counts as downloaded)."""
    import httpx

    directory.mkdir(parents=True, exist_ok=True)
    wall, cpu = time.perf_counter(), time.process_time()
    digest = hashlib.md5()
    with httpx.stream("GET", base_url + NAME) as response, open(directory / NAME, "wb") as out:
        for data in response.iter_raw():
            out.write(data)
            digest.update(data)
        out.flush()
        os.fsync(out.fileno())
    return time.perf_counter() - wall, time.process_time() - cpu


def md5_alone(data: bytes) -> float:
    """Seconds to MD5 ``data`` already in memory, as the engine feeds it (1 MiB at a time): MD5
    cannot be split across cores, so no download checked by it is faster on one stream."""
    view, start = memoryview(data), time.perf_counter()
    digest = hashlib.md5()
    for at in range(0, len(data), 1 << 20):
        digest.update(view[at : at + (1 << 20)])
    return time.perf_counter() - start


def curl(base_url: str, directory: Path) -> tuple[float, float] | None:
    if shutil.which("curl") is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run(["curl", "-s", "-o", str(directory / NAME), base_url + NAME], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - wall, cpu


def peak_rss_of_cli(base_url: str, data: bytes, directory: Path) -> int:
    """Peak RSS in KiB of `imagenet download` fetching ``data`` from ``base_url``."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    sums = directory / "MD5SUMS"
    sums.write_text(f"{hashlib.md5(data).hexdigest()}  {NAME}\n")
    _, peak = run_cli(
        "download",
        "--source",
        "official",
        "--files",
        NAME,
        "--base-url",
        base_url,
        "--checksums",
        str(sums),
        "--root",
        str(directory / "root"),
        "--quiet",
    )
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=256, help="file size for the uncapped runs")
    parser.add_argument("--rate-mb", type=float, default=20, help="per-connection cap for the parallel runs")
    # 48 MB for each of 8 connections: a connection's fixed costs (its start, the last range's
    # tail, the final hash check) are then a few percent of its time, as with a real archive.
    parser.add_argument("--capped-mb", type=int, default=384, help="file size for the capped runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imagenet-bench-"))
    try:
        print(f"1. parallel speed-up, each connection capped at {args.rate_mb:g} MB/s, {args.capped_mb} MB file")
        capped = {NAME: os.urandom(args.capped_mb << 20)}
        with ServerProcess(capped, rate=args.rate_mb * 1e6) as url:
            base = None
            for n in (1, 2, 4, 8):
                wall, _ = ours(url, work / "capped", n)
                rate = args.capped_mb * (1 << 20) / wall / 1e6
                base = base or rate
                print(
                    f"   {n} connection(s): {rate:7.1f} MB/s  = {rate / base:4.2f} x one connection"
                    f"  (target >= {0.8 * n:.1f})"
                )

        print(f"\n2. uncapped loopback, {args.size_mb} MB file (best of 3 each)")
        data = os.urandom(args.size_mb << 20)
        gb = len(data) / 1e9
        with ServerProcess({NAME: data}) as url:
            runs: dict[str, Callable[[], tuple[float, float] | None]] = {
                "curl -o": lambda: curl(url, work / "curl"),
                "plain httpx stream": lambda: plain_httpx(url, work / "httpx"),
                "httpx + MD5 + fsync": lambda: httpx_md5_fsync(url, work / "httpx-md5"),
                "ours, 1 connection": lambda: ours(url, work / "ours1", 1),
                "ours, 4 connections": lambda: ours(url, work / "ours4", 4),
            }
            results: dict[str, tuple[float, float]] = {}
            for label, run in runs.items():
                timings = [timing for _ in range(3) if (timing := run()) is not None]
                if timings:
                    results[label] = min(timings)
            reference, like = results["plain httpx stream"], results["httpx + MD5 + fsync"]
            md5 = min(md5_alone(data) for _ in range(3))
            print(
                f"   MD5 alone, in memory   {len(data) / md5 / 1e6:7.1f} MB/s"
                f"  = {reference[0] / md5:4.2f} x plain httpx, on one core (MD5 cannot be split)"
            )
            for label, (wall, cpu) in results.items():
                print(
                    f"   {label:22} {len(data) / wall / 1e6:7.1f} MB/s  {cpu / gb:5.2f} CPU s/GB"
                    f"  = {reference[0] / wall:4.2f} x plain httpx, {like[0] / wall:4.2f} x httpx + MD5 + fsync"
                )

            print("\n3. peak memory of `imagenet download` (RSS)")
            small = data[: len(data) // 4]
            with ServerProcess({NAME: small}) as small_url:
                rss_small = peak_rss_of_cli(small_url, small, work / "rss-small")
            rss_large = peak_rss_of_cli(url, data, work / "rss-large")
            print(
                f"   {len(small) >> 20} MB file: {rss_small / 1024:.0f} MiB   {len(data) >> 20} MB file: "
                f"{rss_large / 1024:.0f} MiB   = {rss_large / rss_small:.2f} x"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("IMAGENET_NO_PROGRESS", "1")
    main()
