"""The region report through a Python client generated from proto/ (issue #17 point 1).

Run by `cargo bench -p bottomline --bench region_report` when Python's grpcio and
grpcio-tools are installed: python3 report_client.py STUBS_DIR HOST:PORT ROUNDS
STUBS_DIR holds the modules `python3 -m grpc_tools.protoc --python_out --grpc_python_out`
generated from proto/proto/bottomline/v1/sync.proto. Prints one JSON object: p50/p99/max in
ms per call over one channel, and the 107-call Stats loop (all at once) for comparison.
"""

import json
import sys
import time

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
from bottomline.v1 import sync_pb2 as pb  # noqa: E402
from bottomline.v1 import sync_pb2_grpc as rpc  # noqa: E402

addr, rounds = sys.argv[2], int(sys.argv[3])


def summary(xs):
    xs = sorted(xs)
    q = lambda p: xs[min(len(xs) - 1, round((len(xs) - 1) * p))]
    return {"p50_ms": round(q(0.5), 3), "p99_ms": round(q(0.99), 3), "max_ms": round(xs[-1], 3)}


def timed(n, f):
    f()  # warm
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


with grpc.insecure_channel(addr) as ch:
    stub = rpc.SyncStub(ch)

    def report(**kw):
        def call():
            r = stub.Report(pb.ReportRequest(**kw))
            # Read every value, as a client showing the table would.
            return sum(len(row.values) for row in r.rows)
        return call

    counties = [
        row.division
        for row in stub.Report(
            pb.ReportRequest(scope=pb.REPORT_SCOPE_LEVEL, level="county", period="2026-11")
        ).rows
    ]

    def stats_loop():
        futures = [
            stub.Stats.future(pb.StatsRequest(division=c, period="2026-11")) for c in counties
        ]
        return sum(len(f.result().indicators) for f in futures)

    out = {
        "report_counties_month": summary(
            timed(rounds, report(scope=pb.REPORT_SCOPE_LEVEL, level="county", period="2026-11"))
        ),
        "report_counties_year": summary(
            timed(rounds, report(scope=pb.REPORT_SCOPE_LEVEL, level="county", period="2026"))
        ),
        "report_trend_53_weeks": summary(
            timed(
                rounds,
                report(scope=pb.REPORT_SCOPE_DIVISION, division="6101", period="2026", each="week"),
            )
        ),
        "stats_loop_107_parallel_month": summary(timed(max(5, rounds // 10), stats_loop)),
        "counties": len(counties),
    }
    print(json.dumps(out))
