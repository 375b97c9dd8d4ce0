#!/usr/bin/env python3
# The web search page against /v1/search on the same queries (docs/web.md,
# "Measured"): start `shelf serve --bundle <a pylint bundle> --listen
# 127.0.0.1:47811`, then `python3 bench/web_pages.py 127.0.0.1:47811`. Prints
# p50/p90 of each at 8 clients in alternating phases, their ratio, and the
# pages' sizes raw and gzipped. Standard library only; to be folded into
# the shelf-bench harness.
import sys, time, threading, statistics, urllib.parse, http.client, gzip
addr = sys.argv[1]; host, port = addr.split(':')
Q = ["register a new checker with the linter", "parse inline pylint disable comments",
     "detect cyclic imports between modules", "load plugins given on the command line",
     "find the configuration file pylintrc or pyproject.toml", "duplicate code similarity minimum lines",
     "naming style regular expression for variable names", "unused import warning message",
     "run linting in parallel with multiple jobs", "message definition store lookup by symbol"]
def url(kind, q):
    e = urllib.parse.quote_plus(q)
    return f"/?q={e}" if kind == "page" else f"/v1/search?q={e}&group=file&k=20"
def get(c, path):
    t = time.perf_counter(); c.request("GET", path); r = c.getresponse(); b = r.read()
    assert r.status == 200, (r.status, b[:200]); return time.perf_counter() - t, b
def phase(kind, rounds, out):
    def client(i):
        c = http.client.HTTPConnection(host, int(port))
        for r in range(rounds):
            for j in range(len(Q)):
                dt, _ = get(c, url(kind, Q[(i + j) % len(Q)])); out.append(dt)
    ts = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    [t.start() for t in ts]; [t.join() for t in ts]
c = http.client.HTTPConnection(host, int(port))
for q in Q:  # warm: each query embedded once
    get(c, url("api", q)); get(c, url("page", q))
res = {"api": [], "page": []}
for rep in range(3):
    for kind in (["api", "page"] if rep % 2 == 0 else ["page", "api"]):
        phase(kind, 2, res[kind])
for k, v in res.items():
    v.sort(); print(f"{k}: n={len(v)} p50={statistics.median(v)*1e3:.1f} ms p90={v[int(len(v)*0.9)]*1e3:.1f} ms")
print(f"ratio p50 page/api = {statistics.median(res['page'])/statistics.median(res['api']):.3f}")
_, page = get(c, url("page", Q[0])); _, repos = get(c, "/repos"); _, css = get(c, "/assets/web.css"); _, js = get(c, "/assets/web.js")
for name, b in [("search page", page), ("repos page", repos), ("css", css), ("js", js)]:
    print(f"{name}: {len(b)} B raw, {len(gzip.compress(b, 6))} B gzip")
print(f"search page + css + js gzip total: {sum(len(gzip.compress(b,6)) for b in (page, css, js))} B")
