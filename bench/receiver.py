"""Receiver figure: sustained Stripe webhook ingest on loopback against the receiver
behind each HTTP front (granian + the buffering RSGI front, the one shipped; gunicorn
gthread, the previous one), next to the baseline: the exact statement the receiver
sends for each row (one autocommit INSERT ... ON CONFLICT, hub.raw.committed_statement)
from as many connections as the load has clients, in the same run; 10% duplicate
deliveries, every row stored exactly once.

The load generators run as their own process (bench.loadgen), as does each front, bound
to a free loopback port.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.common import (
    LOOPBACK,
    PROJECT_ROOT,
    Figure,
    conninfo,
    free_port,
    log,
    start_process,
    stop_process,
    wait_http,
)
from bench.loadgen import stripe_event
from hub.processes import child_pids

CONCURRENCY = 8
WARMUP_S = 2.0
DURATION_S = 15.0
DUP_RATIO = 0.1
MAX_OPS_PER_THREAD = 100_000
RATIO_TARGET = 0.5
P99_TARGET_MS = 50.0
SECRET = "whsec_benchReceiverSecretNotForProduction0001"
FRONTS = ("granian", "gunicorn")  # the first is the one shipped (make up, the stack)


# --------------------------------------------------------------------------- CPU


def _ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _system_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


@dataclass
class CpuWindow:
    receiver_ticks: int
    busy_ticks: int
    total_ticks: int

    @classmethod
    def read(cls, master: int) -> CpuWindow:
        busy, total = _system_ticks()
        pids = [master, *child_pids(master)]
        return cls(sum(_ticks(p) for p in pids), busy, total)


def _cpu_split(before: CpuWindow, after: CpuWindow, loadgen_cpu_s: float) -> dict[str, float]:
    hz = os.sysconf("SC_CLK_TCK")
    wall = (after.total_ticks - before.total_ticks) / hz / (os.cpu_count() or 1)
    busy = (after.busy_ticks - before.busy_ticks) / hz
    receiver = (after.receiver_ticks - before.receiver_ticks) / hz
    return {
        "wall_s": wall,
        "busy_cpu_s": busy,
        "receiver_cpu_s": receiver,
        "loadgen_cpu_s": loadgen_cpu_s,
        "rest_cpu_s": max(busy - receiver - loadgen_cpu_s, 0.0),
        "capacity_cpu_s": wall * (os.cpu_count() or 1),
    }


# --------------------------------------------------------------------------- runs


def _loadgen(mode: str, target: str, extra: list[str]) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.loadgen", mode, "--target", target,
            "--secret", SECRET, "--concurrency", str(CONCURRENCY), "--warmup", str(WARMUP_S),
            "--duration", str(DURATION_S), "--dup-ratio", str(DUP_RATIO),
            "--max-ops", str(MAX_OPS_PER_THREAD), *extra]  # fmt: skip
    timeout = WARMUP_S + DURATION_S + 120
    done = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen {mode} exited {done.returncode}: {done.stderr[-600:]!r}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def _truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("truncate raw.webhook_events restart identity")


def _baseline(dsn: str) -> dict[str, Any]:
    _truncate(dsn)
    log(f"receiver: baseline, {CONCURRENCY} connections sending the receiver's statement "
        f"for {DURATION_S:.0f} s")  # fmt: skip
    result = _loadgen("sql", dsn, [])
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select count(*), count(distinct dedupe_key) from raw.webhook_events"
        ).fetchone()
    result["rows"], result["distinct_rows"] = (int(row[0]), int(row[1])) if row else (0, 0)
    _truncate(dsn)
    return result


def _gunicorn_env(port: int) -> dict[str, str]:
    env = os.environ.copy()
    env["HUB_STRIPE_WEBHOOK_SECRET"] = SECRET
    # gunicorn_conf.py names its Prometheus directory after HUB_RECEIVER_BIND (and empties
    # it on start), so it must match --bind or it would wipe the default receiver's.
    env["HUB_RECEIVER_BIND"] = f"{LOOPBACK}:{port}"
    return env


def front_argv(front: str, port: int) -> list[str]:
    """How `make up` starts the receiver behind ``front`` on ``port``."""
    if front == "granian":
        return [sys.executable, "-m", "webhook_receiver.serve", "--bind", f"{LOOPBACK}:{port}"]
    return [sys.executable, "-m", "gunicorn", "-c", "webhook_receiver/gunicorn_conf.py",
            "--bind", f"{LOOPBACK}:{port}", "webhook_receiver.app:create_app()"]  # fmt: skip


def _receiver(
    tmp: Path, front: str, dsn: str
) -> tuple[dict[str, Any], dict[str, float], dict[str, Any], dict[str, Any]]:
    _truncate(dsn)
    port = free_port()
    proc = start_process(front_argv(front, port), tmp / f"{front}.log", _gunicorn_env(port))
    try:
        wait_http(f"http://{LOOPBACK}:{port}/health", timeout=60, proc=proc)
        workers = child_pids(proc.pid)
        log(f"receiver: {front} pid {proc.pid} ({len(workers)} workers) on :{port}; load")
        before = CpuWindow.read(proc.pid)
        result = _loadgen("http", f"http://{LOOPBACK}:{port}/webhooks/stripe", ["--with-ids"])
        after = CpuWindow.read(proc.pid)
        info = {"workers": len(workers), "port": port, "front": front}
    finally:
        stop_process(proc)
        _drop_metrics_dir(port)
    return result, _cpu_split(before, after, result["cpu_s"]), info, _stored(dsn)


def _drop_metrics_dir(port: int) -> None:
    from hub.settings import load_settings

    path = load_settings().data_dir / "prometheus" / f"{LOOPBACK}_{port}"
    shutil.rmtree(path, ignore_errors=True)


def _stored(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        keys = [r[0] for r in conn.execute(
            "select dedupe_key from raw.webhook_events where source = 'stripe'"
        ).fetchall()]  # fmt: skip
        flagged = conn.execute(
            "select count(*) from raw.webhook_events where source = 'stripe' and flag is not null"
        ).fetchone()
    return {"keys": keys, "flagged": int(flagged[0]) if flagged else 0}


# --------------------------------------------------------------------------- figure


def _exactly_once(recv: dict, stored: dict) -> dict[str, Any]:
    sent = set(recv["ids"])
    keys = [k for k in stored["keys"] if k is not None]
    rows = len(stored["keys"])
    lost, extra = len(sent - set(keys)), len(set(keys) - sent)
    doubled = len(keys) - len(set(keys))
    ok = rows == len(sent) and lost == 0 and extra == 0 and doubled == 0
    return {"sent": len(sent), "rows": rows, "lost": lost, "extra": extra,
            "doubled": doubled, "ok": ok, "flagged": stored["flagged"]}  # fmt: skip


def _figure(base: dict, recv: dict, cpu: dict, info: dict, stored: dict, *, others: dict) -> Figure:
    ratio = recv["rate_per_s"] / base["rate_per_s"] if base["rate_per_s"] else 0.0
    lat, blat = recv["latency_ms"], base["latency_ms"]
    once = _exactly_once(recv, stored)
    p99 = lat.get("p99", float("inf"))
    passed = ratio >= RATIO_TARGET and p99 < P99_TARGET_MS and once["ok"]
    share = {k: cpu[k] / cpu["capacity_cpu_s"] for k in ("receiver_cpu_s", "loadgen_cpu_s",
                                                         "rest_cpu_s", "busy_cpu_s")}  # fmt: skip
    fronts = []
    for front, (r, c, i, st) in others.items():
        o = _exactly_once(r, st)
        fronts.append(
            f"| {front}{' (shipped)' if front == info['front'] else ''} | {i['workers']} | "
            f"**{r['rate_per_s']:,.0f}** | {r['rate_per_s'] / base['rate_per_s']:.2f} | "
            f"{r['latency_ms'].get('p50', 0):.1f} / {r['latency_ms'].get('p99', 0):.1f} | "
            f"{c['receiver_cpu_s'] / max(r['sends'], 1) * 1000:.2f} | {r['non_2xx']} | "
            f"{o['sent']:,} / {o['rows']:,} {'ok' if o['ok'] else 'MISMATCH'} |"
        )
    lines = [
        f"Load: {CONCURRENCY} client threads in a separate process, one keep-alive "
        "connection each (raw HTTP/1.1 over a socket), sending Stripe-signed "
        "`checkout.session.completed` "
        f"events (HMAC-SHA256 over `t.body`, {len(stripe_event('evt_bench00x00000001')):,}"
        f"-byte JSON body); {DUP_RATIO:.0%} of sends repeat an id already sent (re-signed, as "
        f"Stripe retries). {WARMUP_S:.0f} s warm-up, then {DURATION_S:.0f} s measured; "
        "latency is client-side per request.",
        "Receiver: the Flask app behind each front, on a free loopback port, HUB_DATABASE_URL "
        "= the bench database. Each request verifies the signature and commits its row in "
        "raw.webhook_events before answering (group commit: rows of concurrent requests "
        "queued while a commit is in flight are committed together, one pipelined "
        "transaction, and none of them is answered before that COMMIT returns; a lone row "
        "is one autocommit statement). granian = `python -m webhook_receiver.serve` "
        "(granian RSGI, the buffering front, 2 workers, as shipped: a genuine Stripe "
        "delivery is verified, kept and answered on the front's event loop by "
        "webhook_receiver.lean with the Flask endpoint's own checks, stored row, answer "
        "and log line; anything else goes to the Flask app on 4 WSGI threads); "
        "gunicorn = `gunicorn -c webhook_receiver/gunicorn_conf.py` (2 gthread workers x 4 "
        "threads, the previous front, every request through Flask).",
        f"Baseline: {CONCURRENCY} connections in a separate process, each sending the exact "
        "statement the receiver sends for the same row (`hub.raw.committed_statement`: one "
        "autocommit INSERT ... ON CONFLICT DO NOTHING that returns the new or the existing "
        "id) into the same table, same duplicate share, same duration.",
        "",
        "| front | workers | req/s | ratio to baseline | p50 / p99 ms | receiver CPU ms/req "
        "| non-2xx | distinct ids / rows |",
        "|---|---|---|---|---|---|---|---|",
        *fronts,
        f"| baseline (statement only) | - | {base['rate_per_s']:,.0f} | 1.00 | "
        f"{blat.get('p50', 0):.1f} / {blat.get('p99', 0):.1f} | - | {base['non_2xx']} | "
        f"{base['distinct_ids']:,} / {base['rows']:,} |",
        "",
        f"Exactly once ({info['front']}): {once['rows']:,} rows for {once['sent']:,} distinct "
        f"event ids sent; missing {once['lost']}, unexpected {once['extra']}, stored twice "
        f"{once['doubled']}, flagged {once['flagged']}; ids acknowledged 2xx: "
        f"{recv['acked_ids']:,}.",
        "",
        f"CPU during the {info['front']} run ({cpu['wall_s']:.1f} s x {os.cpu_count()} cores = "
        f"{cpu['capacity_cpu_s']:.0f} CPU-s): receiver processes "
        f"{cpu['receiver_cpu_s']:.1f} s ({share['receiver_cpu_s']:.0%}), load generator "
        f"{cpu['loadgen_cpu_s']:.1f} s ({share['loadgen_cpu_s']:.0%}), everything else "
        f"(PostgreSQL, ...) {cpu['rest_cpu_s']:.1f} s ({share['rest_cpu_s']:.0%}); "
        f"machine busy {share['busy_cpu_s']:.0%}.",
    ]
    if p99 >= P99_TARGET_MS or ratio < RATIO_TARGET:
        lines += ["", _explain_miss(cpu, share)]
    return Figure(
        key="receiver-ingest",
        title="Receiver: sustained Stripe webhook ingest (fair baseline, granian vs gunicorn)",
        target=f"throughput ratio >= {RATIO_TARGET} against the receiver's own statement, "
        f"p99 < {P99_TARGET_MS:.0f} ms, every distinct event stored exactly once",
        passed=passed,
        summary=f"{info['front']} {recv['rate_per_s']:,.0f} req/s vs {base['rate_per_s']:,.0f} "
        f"statements/s = ratio {ratio:.2f}; p50 {lat.get('p50', 0):.1f} ms, p99 {p99:.1f} ms; "
        f"{once['sent']:,} distinct ids -> {once['rows']:,} rows "
        f"({'exactly once' if once['ok'] else 'MISMATCH'})",
        lines=lines,
        data={"rate": recv["rate_per_s"], "baseline": base["rate_per_s"], "ratio": ratio,
              "p99_ms": p99, "exactly_once": once["ok"]},
    )  # fmt: skip


_NAMES = {
    "receiver_cpu_s": "the receiver's own Python in its worker processes",
    "loadgen_cpu_s": "the load generator",
    "rest_cpu_s": "PostgreSQL and the rest of the machine",
}


def _explain_miss(cpu: dict, share: dict) -> str:
    busiest = max(_NAMES, key=cpu.__getitem__)
    return (
        f"Missed target. The machine was {share['busy_cpu_s']:.0%} busy and the largest CPU "
        f"consumer was {_NAMES[busiest]} ({share[busiest]:.0%} of {os.cpu_count()} cores). "
        "The receiver is CPU-bound (HTTP parsing, Stripe signature check, header "
        "redaction, the JSON request log, metrics, the committer's psycopg work) with "
        "one GIL per worker, while the baseline spends almost nothing outside "
        f"PostgreSQL; on this {os.cpu_count()}-core machine the load generator, the workers "
        "and PostgreSQL also compete for the same cores. Not tuned away: each front runs "
        "as shipped."
    )


def run() -> list[Figure]:
    dsn = conninfo(os.environ["HUB_DATABASE_URL"])
    runs = {}
    with tempfile.TemporaryDirectory(prefix="hub-bench-recv-") as tmp:
        base = _baseline(dsn)
        log(f"receiver: baseline {base['rate_per_s']:,.0f} statements/s")
        for front in FRONTS:
            runs[front] = _receiver(Path(tmp), front, dsn)
            recv = runs[front][0]
            log(f"receiver ({front}): {recv['rate_per_s']:,.0f} req/s, "
                f"p99 {recv['latency_ms'].get('p99')}")  # fmt: skip
    recv, cpu, info, stored = runs[FRONTS[0]]
    return [_figure(base, recv, cpu, info, stored, others=runs)]
