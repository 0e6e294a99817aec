"""Watch a ZooKeeper ensemble during a rolling restart; print each node's outage as JSON.

Every few hundred milliseconds each node is asked `srvr`. A node that refuses the connection
is down; one that answers without a mode is up but not serving (during a leader election every
node is). A node's outage runs from the first sample that finds it down to the first one that
finds it serving again: a gated rolling restart never lets two outages overlap. The run ends
when the stop file appears.
"""

from __future__ import annotations

import argparse
import itertools
import json
import ssl
import time
from pathlib import Path

from rtm.health.cluster import four_letter_word


def state(address: str, tls: ssl.SSLContext | None) -> str:
    host, port = address.rsplit(":", 1)
    try:
        answer = four_letter_word("srvr", host, int(port), 1, tls)
    except OSError:
        return "down"
    return "serving" if "Mode:" in answer else "not serving"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stop-file", type=Path, required=True)
    parser.add_argument("--limit", type=float, default=600, help="seconds before giving up")
    parser.add_argument("--tls", nargs=3, metavar=("CA", "CERT", "KEY"), help="PEM files")
    parser.add_argument("nodes", nargs="+", help="HOST:PORT of every member")
    args = parser.parse_args()
    tls = None
    if args.tls:
        tls = ssl.create_default_context(cafile=args.tls[0])
        tls.load_cert_chain(args.tls[1], args.tls[2])
    start = time.monotonic()
    outages: dict[str, list[list[float]]] = {node: [] for node in args.nodes}
    samples = 0
    while not args.stop_file.exists() and time.monotonic() < start + args.limit:
        for node in args.nodes:
            seen, now = state(node, tls), round(time.monotonic() - start, 2)
            open_outage = outages[node] and len(outages[node][-1]) == 1
            if seen == "down" and not open_outage:
                outages[node].append([now])
            elif seen == "serving" and open_outage:
                outages[node][-1].append(now)
        samples += 1
        time.sleep(0.2)
    spans = sorted(span for spans in outages.values() for span in spans)
    overlaps = sum(1 for a, b in itertools.pairwise(spans) if len(a) == 1 or b[0] <= a[1])
    unended = sum(1 for span in spans if len(span) == 1)
    report = {"samples": samples, "outages": outages, "overlaps": overlaps, "unended": unended}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
