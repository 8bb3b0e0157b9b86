"""Call setups per second through SipEngine against a sipp UAS (INVITE → 180 → 200 → ACK).

Dials `--calls` calls, at most `--concurrency` outstanding, each in its own meeting; a call
counts when its ANSWERED report arrives, then it is hung up (BYE). Prints setups/s and the
setup latency (dial → ANSWERED) p50/p99. Needs sipp (Debian sip-tester).

    python bench/dial_rate.py [--calls 300] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass

from telemeeting.telephony.driver import DialOrder, LegReport, Progress
from telemeeting.telephony.sip.engine import SipEngine

HOST = "127.0.0.1"


@dataclass
class Route:
    match: str
    target: str
    username: str = ""
    password: str = ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


async def main(calls: int, concurrency: int) -> None:
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("sipp not found: apt-get install -y --no-install-recommends sip-tester")
    port, media, control = free_port(), free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="dial-rate-")
    uas = subprocess.Popen(
        [sipp, "-sn", "uas", "-i", HOST, "-p", str(port), "-mi", HOST, "-mp", str(media),
         "-cp", str(control), "-nostdin", "-timeout", "600"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    engine = SipEngine(
        local_host=HOST,
        local_port=0,
        rtp_port_min=40000,
        rtp_port_max=49999,
        routes=[Route(".*", f"sip:{{number}}@{HOST}:{port}")],
    )
    started: dict[str, float] = {}
    latencies: list[float] = []
    ended: list[LegReport] = []
    done = asyncio.Event()
    slots = asyncio.Semaphore(concurrency)
    last_answer = 0.0

    async def sink(report: LegReport) -> None:
        if report.progress is Progress.ANSWERED:
            nonlocal last_answer
            last_answer = time.perf_counter()
            latencies.append(last_answer - started[report.leg_id])
            await engine.hang_up(report.meeting_id, report.leg_id)
            slots.release()
        elif report.progress is Progress.ENDED:
            ended.append(report)
            slots.release()
        if len(latencies) + len(ended) >= calls:
            done.set()

    engine.attach(sink)
    await engine.start()
    await asyncio.sleep(0.5)  # let sipp bind
    begin = time.perf_counter()
    for index in range(calls):
        await slots.acquire()
        leg = f"leg{index}"
        started[leg] = time.perf_counter()
        await engine.dial(DialOrder(f"m{index}", leg, str(1000 + index), "", "100", "production"))
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - begin
    await engine.close()
    uas.terminate()
    uas.wait(5)
    ms = sorted(x * 1000 for x in latencies)
    print(f"dial rate against sipp uas: {calls} calls, concurrency {concurrency}")
    reasons = sorted({r.reason.name for r in ended if r.reason})
    print(f"  answered {len(latencies)}, failed {len(ended)} {reasons}, in {elapsed:.2f} s")
    answering = last_answer - begin
    print(f"  setups/s {len(latencies) / answering:.0f} ({answering:.2f} s to the last answer)")
    if ms:
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        p50 = statistics.median(ms)
        print(f"  setup latency ms: p50 {p50:.1f}  p99 {p99:.1f}  max {ms[-1]:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.concurrency))
