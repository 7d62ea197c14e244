"""A bounded soak of a running `recur serve`: normal chat clients beside
hostile ones, then SIGTERM.

    python3 .ci/soak.py URL PID [--seconds 60] [--clients 64] [--grace 10]

While --clients normal clients send /chat (and /v1/classify when the
server has a classifier), hostile clients run beside them: slowloris
connections dribbling header bytes, idle connections, bodies that declare
50 MB, bodies that never finish, contexts and rows that overflow the
models, malformed JSON, and a /health flood, once /health answers 200 (it
waits up to 5 minutes for a server still loading). It then checks: every normal
request answered 200; every hostile one refused with a 4xx/5xx JSON or
cut off, never a 500; resident memory flat (the last reading within 25%
of the first after warm-up); open descriptors bounded; and SIGTERM ends the
process within the grace period plus a margin. Loopback only; every loop
is bounded in time. Prints the figures; exits 1 on a failed check.
Standard library only.
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import sys
import threading
import time
from urllib.parse import urlparse

ap = argparse.ArgumentParser()
ap.add_argument("url")
ap.add_argument("pid", type=int)
ap.add_argument("--seconds", type=float, default=60)
ap.add_argument("--clients", type=int, default=64)
ap.add_argument("--grace", type=float, default=10)
a = ap.parse_args()
u = urlparse(a.url)
HOST, PORT = u.hostname, u.port
assert HOST in ("127.0.0.1", "localhost", "::1"), "loopback only"
END = time.time() + a.seconds
lock = threading.Lock()
stats = {"normal_ok": 0, "normal_err": 0, "hostile": 0, "hostile_500": 0, "health_ok": 0, "health_other": 0}
errors = []
SENTENCES = [
    "The city was founded on seven hills.",
    "Rain fell over the harbour all night.",
    "The committee met again in the spring.",
    "Engines of that kind burn coal.",
    "She wrote three novels before the war.",
]


def bump(k, n=1):
    with lock:
        stats[k] += n


def request(method, path, body=None, timeout=30):
    c = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# A server started just before (`recur serve ... & python3 .ci/soak.py
# ... $!`) is still loading its models: its 503s are not failures of the
# soak, which starts once /health says ready (up to 5 minutes).
ready_by = time.time() + 300
while True:
    try:
        if request("GET", "/health", timeout=10)[0] == 200:
            break
    except OSError:
        pass
    if time.time() > ready_by:
        print("soak FAILED: /health never answered 200 within 300 s")
        sys.exit(1)
    time.sleep(0.5)
END = time.time() + a.seconds

info = json.loads(request("GET", "/info")[1])
dim = info["encoder"]["dim"] if info.get("encoder") else None
clf = info.get("classifier")


def metric(name):
    text = request("GET", "/metrics")[1].decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def fds():
    try:
        return len(os.listdir(f"/proc/{a.pid}/fd"))
    except OSError:
        return -1


def normal(i):
    g = random.Random(i)
    while time.time() < END:
        try:
            if clf and (not dim or g.random() < 0.2):
                rows = [[g.random() for _ in clf["features"]] for _ in range(clf["min_rows"])]
                status, body = request("POST", "/v1/classify", json.dumps({"window": rows}))
            else:
                msgs = g.sample(SENTENCES, k=g.randint(1, 3))
                if g.random() < 0.1:
                    msgs.append(f"A new sentence number {g.randint(0, 10**9)}.")
                status, body = request("POST", "/chat", json.dumps({"messages": msgs}))
            if status == 200:
                bump("normal_ok")
            else:
                bump("normal_err")
                with lock:
                    errors.append((status, body[:200]))
        except Exception as e:  # a refused or reset connection is an error too
            bump("normal_err")
            with lock:
                errors.append(("exception", repr(e)))


def hostile_request(kind, g):
    """One hostile exchange; returns the status, or None when cut off."""
    s = socket.create_connection((HOST, PORT), timeout=20)
    try:
        if kind == "slowloris":
            s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
            for _ in range(30):
                if time.time() > END:
                    break
                s.sendall(b"X-a: b\r\n")
                time.sleep(1)
        elif kind == "idle":
            time.sleep(min(30, max(0, END - time.time())))
        elif kind == "declared":
            s.sendall(b"POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n{\"messages\": [")
        elif kind == "unfinished":
            s.sendall(b"POST /v1/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"context")
        elif kind == "poison_infer" and dim:
            body = json.dumps({"context_vectors": [[3.4e38] * dim] * 2}).encode()
            s.sendall(b"POST /v1/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        elif kind == "poison_classify" and clf:
            rows = [[3.0e38 for _ in clf["features"]] for _ in range(clf["min_rows"])]
            body = json.dumps({"window": rows}).encode()
            s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        else:
            body = g.choice([b"{\"messages\": [\"hi\"]} trailing", b"{{{{", b"[" * 5000, b"\x00\xff", b"{\"messages\": [\"\\u200b\"]}"])
            s.sendall(b"POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and (b"}" in data or b"Content-Length: 0" in data):
                break
        if not data:
            return None
        return int(data.split(b" ", 2)[1])
    except (socket.timeout, ConnectionError, OSError, ValueError, IndexError):
        return None
    finally:
        s.close()


def hostile(i):
    g = random.Random(1000 + i)
    kinds = ["slowloris", "idle", "declared", "unfinished", "poison_infer", "poison_classify", "garbage"]
    while time.time() < END:
        status = hostile_request(kinds[i % len(kinds)], g)
        bump("hostile")
        if status == 500:
            bump("hostile_500")
        time.sleep(0.05)  # bounded: the normal clients are the point


def health_flood():
    while time.time() < END:
        try:
            status, _ = request("GET", "/health", timeout=10)
            bump("health_ok" if status == 200 else "health_other")
        except Exception:
            bump("health_other")
        time.sleep(0.02)


rss0 = metric("process_resident_memory_bytes")
fd0 = fds()
threads = [threading.Thread(target=normal, args=(i,)) for i in range(a.clients)]
threads += [threading.Thread(target=hostile, args=(i,)) for i in range(28)]
threads += [threading.Thread(target=health_flood) for _ in range(2)]
for t in threads:
    t.daemon = True
    t.start()
samples = []
warm = time.time() + min(10, a.seconds / 4)
while time.time() < END:
    time.sleep(2)
    if time.time() > warm:
        samples.append((metric("process_resident_memory_bytes"), fds()))
for t in threads:
    t.join(timeout=40)
rss_first, rss_last = samples[0][0], samples[-1][0]
fd_max = max(f for _, f in samples)
t0 = time.time()
os.kill(a.pid, signal.SIGTERM)
stopped = None
while time.time() - t0 < a.grace + 10:
    try:
        os.kill(a.pid, 0)
    except ProcessLookupError:
        stopped = time.time() - t0
        break
    # A zombie child of the calling shell still answers kill 0: read its state.
    try:
        with open(f"/proc/{a.pid}/stat") as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                stopped = time.time() - t0
                break
    except OSError:
        stopped = time.time() - t0
        break
    time.sleep(0.05)

mb = lambda b: b / 2**20
print(f"soak: {a.seconds:.0f} s, {a.clients} normal clients, 28 hostile, 2 health flooders")
print(f"  normal requests: {stats['normal_ok']} answered 200, {stats['normal_err']} errors")
print(f"  hostile exchanges: {stats['hostile']} ({stats['hostile_500']} got 500)")
print(f"  /health: {stats['health_ok']} 200, {stats['health_other']} other")
print(f"  server RSS: {mb(rss0):.0f} MiB at start, {mb(rss_first):.0f} after warm-up, {mb(rss_last):.0f} at the end")
print(f"  open descriptors: {fd0} at start, at most {fd_max} under load")
print(f"  SIGTERM to exit: {'%.2f s' % stopped if stopped is not None else 'did not exit'}")
for e in errors[:5]:
    print("  normal error:", e)
failed = []
if stats["normal_err"]:
    failed.append("normal clients saw errors")
if stats["normal_ok"] == 0:
    failed.append("no normal request was answered")
if stats["hostile_500"]:
    failed.append("a hostile request got a 500")
if rss_last > 1.25 * rss_first:
    failed.append("memory grew by more than 25% after warm-up")
if fd_max > 4 * (a.clients + 64) + 1200:
    failed.append("open descriptors unbounded")
if stopped is None or stopped > a.grace + 5:
    failed.append("SIGTERM did not end the server within the grace period")
if failed:
    print("soak FAILED: " + "; ".join(failed))
    sys.exit(1)
print("soak: OK")
