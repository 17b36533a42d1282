#!/usr/bin/env python3
"""scripts/bench driver: the Swift worker vs `prefect worker start --type process`, same server, same run,
interleaved. Writes .bench/results-<db>.json and .bench/results-<db>.md and prints the table.
Environment (set by scripts/bench): BENCH_API, BENCH_ROOT, BENCH_BIN (the package's binary), BENCH_BIN_DYNAMIC,
BENCH_BIN_STATIC, BENCH_REFERENCE (the reference programs' folder), BENCH_VENV, BENCH_OUT, BENCH_DB (sqlite|postgres),
BENCH_QUICK."""
import json, os, shutil, signal, statistics, subprocess, sys, time
from datetime import datetime
import httpx

API = os.environ["BENCH_API"]; ROOT = os.environ["BENCH_ROOT"]; BIN = os.environ["BENCH_BIN"]
VENV = os.environ["BENCH_VENV"]; OUT = os.environ["BENCH_OUT"]; QUICK = os.environ.get("BENCH_QUICK") == "1"
DB = os.environ.get("BENCH_DB", "sqlite")
VARIANTS = {"shared runtime": os.environ.get("BENCH_BIN_DYNAMIC"), "static runtime": os.environ.get("BENCH_BIN_STATIC"), "static runtime, -Osize, lld with packed relocations (the package)": BIN}
N_RUNS = 6 if QUICK else 20; N_PAUSES = 3 if QUICK else 10; N_E2E = 10 if QUICK else 50
IDLE_SECONDS = 15 if QUICK else 60; WAITING = [0, 5] if QUICK else [0, 10, 100]
# 1,000 runs waiting at a gate: the Swift worker only (the Python side would start 1,000 processes first), on PostgreSQL.
SWIFT_ONLY_WAITING = [50] if QUICK else [1000]
if DB != "postgres": SWIFT_ONLY_WAITING = []
PHASES = set(os.environ.get("BENCH_PHASES", "1,2,3,4,5,6,7").split(","))  # to re-measure some phases only
http = httpx.Client(base_url=API, timeout=60)
results = {"machine": {}, "metrics": []}

def log(*a): print("bench:", *a, file=sys.stderr, flush=True)

def call(method, path, **kw):
    for attempt in range(12):  # SQLite answers 503 "database is locked" under load: retry like Prefect's client
        r = http.request(method, path, **kw)
        if r.status_code not in (408, 429, 502, 503): break
        time.sleep(min(8, 0.25 * 2 ** attempt))
    r.raise_for_status()
    return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else r.text

def ts(s): return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

def pct(values, p):
    v = sorted(values)
    if not v: return None
    k = (len(v) - 1) * p / 100
    f = int(k); c = min(f + 1, len(v) - 1)
    return v[f] + (v[c] - v[f]) * (k - f)

def metric(name, unit, swift, python, better="lower", note=""):
    ratio = (python / swift if better == "lower" else swift / python) if swift and python else None
    results["metrics"].append({"name": name, "unit": unit, "swift": swift, "python": python, "advantage": ratio, "note": note})
    log(f"{name}: swift={swift} python={python} advantage={ratio and round(ratio, 1)}x")

# ---------- setup ----------
def penv(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and not k.startswith("AUTONOMY_")}
    env.update({"PREFECT_API_URL": API, "PREFECT_HOME": f"{OUT}/prefect-cli", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    env.update(extra or {})
    return env

SWIFT_DIR = f"{OUT}/swift"
shutil.rmtree(SWIFT_DIR, ignore_errors=True); os.makedirs(SWIFT_DIR)
shutil.copytree(f"{ROOT}/templates", f"{SWIFT_DIR}/templates")
open(f"{SWIFT_DIR}/prefect.yaml", "w").write("deployments:\n  - name: bench\n    parameters: {project: example}\n    work_pool: {name: bench-swift}\n")
open(f"{SWIFT_DIR}/config.yml", "w").write("prefect: {work_pool: bench-swift}\nworker: {limit: 4}\nllm: {provider: offline}\nstate_dir: state\n")
subprocess.run([BIN, "deploy", "--config", f"{SWIFT_DIR}/config.yml"], env=penv(), check=True, capture_output=True)
SWIFT_DEP = call("GET", "/deployments/name/autonomous-build/bench")["id"]

PY_DIR = f"{OUT}/python"
shutil.rmtree(PY_DIR, ignore_errors=True); os.makedirs(PY_DIR)
shutil.copy(f"{ROOT}/scripts/bench.d/bench_flow.py", PY_DIR)
subprocess.run([f"{VENV}/bin/prefect", "work-pool", "create", "bench-python", "--type", "process", "--overwrite"], env=penv(), check=True, capture_output=True)
subprocess.run([f"{VENV}/bin/python", "-c", f"""
from prefect import flow
flow.from_source(source={PY_DIR!r}, entrypoint="bench_flow.py:bench").deploy(name="bench", work_pool_name="bench-python", build=False, push=False, print_next_steps=False)
"""], env=penv(), check=True, capture_output=True, cwd=PY_DIR)
PY_DEP = call("GET", "/deployments/name/bench-python/bench")["id"]
log("deployments ready")

def start_swift(name, api=None, binary=None):
    return subprocess.Popen([binary or BIN, "worker", "--config", f"{SWIFT_DIR}/config.yml", "--name", name], env=penv({"PREFECT_API_URL": api or API}),
                            stdout=open(f"{OUT}/{name}.log", "a"), stderr=subprocess.STDOUT, start_new_session=True)

def start_python(name, api=None, limit=4):
    return subprocess.Popen([f"{VENV}/bin/prefect", "worker", "start", "--pool", "bench-python", "--type", "process", "--name", name, "--limit", str(limit)],
                            env=penv({"PREFECT_API_URL": api or API}), cwd=PY_DIR, stdout=open(f"{OUT}/{name}.log", "a"), stderr=subprocess.STDOUT, start_new_session=True)

def stop(p):
    try: os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError: return
    try: p.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); p.wait()

def heartbeat_seen(pool, name, after):
    for w in call("POST", f"/work_pools/{pool}/workers/filter", json={}):
        if w["name"] == name and w.get("last_heartbeat_time") and ts(w["last_heartbeat_time"]) >= after - 0.5: return True
    return False

def cold_start(kind, i):
    name = f"cold-{kind}-{i}"; pool = "bench-swift" if kind == "swift" else "bench-python"
    t0 = time.time()
    p = start_swift(name) if kind == "swift" else start_python(name)
    while not heartbeat_seen(pool, name, t0):
        if time.time() - t0 > 120: raise SystemExit(f"{kind} worker did not heartbeat")
        time.sleep(0.02)
    elapsed = time.time() - t0
    stop(p)
    return elapsed

def tree(pid):
    pids, frontier = [pid], [pid]
    while frontier:
        p = frontier.pop()
        try: kids = open(f"/proc/{p}/task/{p}/children").read().split()
        except OSError: kids = []
        pids += [int(k) for k in kids]; frontier += [int(k) for k in kids]
    return pids

def proc_kb(pids, file, fields):
    """Sums the kB `fields` of /proc/<pid>/<file> over a process tree."""
    total = 0
    for p in pids:
        try:
            for line in open(f"/proc/{p}/{file}"):
                if line.startswith(fields): total += int(line.split()[1])
        except OSError: pass
    return total

def rss_kb(pids): return proc_kb(pids, "status", ("VmRSS:",))

def private_kb(pids):
    """USS: pages only this process tree holds; shared library pages excluded."""
    return proc_kb(pids, "smaps_rollup", ("Private_Clean:", "Private_Dirty:"))

def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError: pass
    return total

def wait_run(run_id, pred, timeout=600):
    t0 = time.time()
    while time.time() - t0 < timeout:
        r = call("GET", f"/flow_runs/{run_id}")
        if pred(r): return r
        time.sleep(0.1)
    raise SystemExit(f"run {run_id} timed out in state {r['state_name']}")

def create(dep, params):
    return call("POST", f"/deployments/{dep}/create_flow_run", json={"parameters": params})["id"]

def first_task_start_after(run_id, t0):
    """The start of the first task run that began after t0 (Python names task runs after the function, so
    'the next task' is found by time, the same way for both workers)."""
    starts = [ts(t["start_time"]) for t in call("POST", "/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}) if t.get("start_time")]
    later = [s for s in starts if s >= t0 - 0.01]
    return min(later) if later else None

# ---------- 1. cold start ----------
if "1" in PHASES:
    cold = {"swift": [], "python": []}
    for i in range(3):
        for kind in ("swift", "python"): cold[kind].append(cold_start(kind, i))
    metric("worker start → first heartbeat (median of 3)", "s", statistics.median(cold["swift"]), statistics.median(cold["python"]))

# ---------- 2. idle RSS and USS and CPU, all idle over the same window; one row per build of the Swift worker ----------
if "2" in PHASES:
    variants = {label: b for label, b in VARIANTS.items() if b}
    workers = {label: start_swift(f"idle-swift-{i}", binary=b) for i, (label, b) in enumerate(variants.items())}
    py = start_python("idle-python")
    # The floor under the worker: small programs linked like the package's binary, idle in the same window.
    refdir = os.environ.get("BENCH_REFERENCE")
    references = {name: subprocess.Popen([f"{refdir}/{name}"], stdout=subprocess.DEVNULL, start_new_session=True)
                  for name in sorted(f for f in os.listdir(refdir) if not f.endswith(".log"))} if refdir else {}
    t0 = time.time()
    while not (all(heartbeat_seen("bench-swift", f"idle-swift-{i}", t0) for i in range(len(workers))) and heartbeat_seen("bench-python", "idle-python", t0)):
        if time.time() - t0 > 120: raise SystemExit("idle workers did not heartbeat")
        time.sleep(0.1)
    time.sleep(3)
    procs = dict(workers, python=py, **{f"reference {n}": p for n, p in references.items()})
    c0 = {k: cpu_ticks(tree(p.pid)) for k, p in procs.items()}
    samples = {k: [] for k in procs}; private = {k: [] for k in procs}
    for _ in range(IDLE_SECONDS):
        for k, p in procs.items():
            samples[k].append(rss_kb(tree(p.pid))); private[k].append(private_kb(tree(p.pid)))
        time.sleep(1)
    hz = os.sysconf("SC_CLK_TCK")
    cpu = {k: (cpu_ticks(tree(p.pid)) - c0[k]) / hz for k, p in procs.items()}
    med = lambda k, d: statistics.median(d[k]) / 1024
    for label in workers:
        metric(f"idle RSS, worker + children (median), Swift {label}", "MB", round(med(label, samples), 1), round(med("python", samples), 1),
               note="RSS includes shared library pages; USS (next row) only what this process alone holds")
        metric(f"idle USS, worker + children (median), Swift {label}", "MB", round(med(label, private), 1), round(med("python", private), 1))
    labels = {"1-runtime": "the static Swift runtime, idle", "2-libcurl": "+ Debian's libcurl initialised (OpenSSL)",
              "3-foundation": "+ JSON through the full Foundation (Yams links it)", "4-essentials": "3 with FoundationEssentials only"}
    for n in references:
        metric(f"idle RSS, reference program {n}: {labels.get(n, n)}", "MB", round(med(f"reference {n}", samples), 1), round(med("python", samples), 1),
               note=f"USS {round(med(f'reference {n}', private), 1)} MB; scripts/bench.d/reference/, linked as the package's binary")
    main = list(workers)[-1]
    metric(f"idle CPU over {IDLE_SECONDS} s", "CPU-s", round(cpu[main], 3), round(cpu["python"], 3), note="Swift polls every 0.5 s, Python every 10 s (defaults)")
    for p in procs.values(): stop(p)

# ---------- 3. create → Running / Completed, interleaved, one run at a time ----------
if "3" in PHASES or "4" in PHASES:
    sw, py = start_swift("idle-swift"), start_python("idle-python")
    t0 = time.time()
    while not (heartbeat_seen("bench-swift", "idle-swift", t0) and heartbeat_seen("bench-python", "idle-python", t0)): time.sleep(0.1)
flow_time = None
if "3" in PHASES:
    lat = {"swift": {"run": [], "done": []}, "python": {"run": [], "done": []}}
    for i in range(N_RUNS):
        for kind, dep, params in (("swift", SWIFT_DEP, {"gates": "default"}), ("python", PY_DEP, {})):
            rid = create(dep, params)
            r = wait_run(rid, lambda r: r["state_type"] in ("COMPLETED", "FAILED", "CRASHED"))
            assert r["state_type"] == "COMPLETED", f"{kind} run {rid} ended {r['state_name']}"
            lat[kind]["run"].append(ts(r["start_time"]) - ts(r["created"])); lat[kind]["done"].append(ts(r["end_time"]) - ts(r["created"]))
    for key, label in (("run", "Running"), ("done", "Completed")):
        for p in (50, 95):
            metric(f"create_flow_run → {label} p{p} ({N_RUNS} runs)", "s", round(pct(lat["swift"][key], p), 3), round(pct(lat["python"][key], p), 3))
    flow_time = {k: [d - r for d, r in zip(lat[k]["done"], lat[k]["run"])] for k in lat}

# ---------- 4. resume → next task Running ----------
if "4" in PHASES:
    res = {"swift": [], "python": []}
    for i in range(N_PAUSES):
        for kind, dep, params, nxt in (("swift", SWIFT_DEP, {"gates": "ask"}, "implement"), ("python", PY_DEP, {"mode": "pause"}, "implement")):
            rid = create(dep, params)
            wait_run(rid, lambda r: r["state_type"] == "PAUSED")
            keyset = call("GET", f"/flow_runs/{rid}")["state"]["state_details"]["run_input_keyset"]
            for _ in range(100):  # the schema is written right after the pause is accepted
                if http.get(f"/flow_runs/{rid}/input/{keyset['schema']}").status_code == 200: break
                time.sleep(0.05)
            t0 = time.time()
            r = call("POST", f"/flow_runs/{rid}/resume", json={"run_input": {"choice": "approve"}})
            assert r["status"] == "ACCEPT", r
            deadline = time.time() + 120
            while (start := first_task_start_after(rid, t0)) is None:
                if time.time() > deadline: raise SystemExit(f"{kind} run {rid}: no task started within 120 s of the resume")
                time.sleep(0.05)
            res[kind].append(start - t0)
            wait_run(rid, lambda r: r["state_type"] in ("COMPLETED", "FAILED", "CRASHED"))
    for p in (50, 95):
        metric(f"resume → next task Running p{p} ({N_PAUSES} pauses)", "s", round(pct(res["swift"], p), 3), round(pct(res["python"], p), 3),
               note="Python: pause_flow_run polls every 10 s")

# ---------- 5. orchestration overhead per stage vs the API round trips it needs ----------
def proxy(tag, request_log=None):
    pf = f"{OUT}/{tag}.port"
    if os.path.exists(pf): os.remove(pf)
    p = subprocess.Popen([f"{VENV}/bin/python", f"{ROOT}/scripts/bench.d/count_proxy.py", pf, API.rsplit("/api", 1)[0]] + ([request_log] if request_log else []), start_new_session=True)
    while not os.path.exists(pf): time.sleep(0.05)
    port = open(pf).read()
    return p, f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}/__count"

if "5" in PHASES:
    if flow_time is None:  # phase 3 not run: a few runs of each side for the flow time
        flow_time = {"swift": [], "python": []}
        for i in range(5):
            for kind, dep, params in (("swift", SWIFT_DEP, {"gates": "default"}), ("python", PY_DEP, {})):
                r = wait_run(create(dep, params), lambda r: r["state_type"] in ("COMPLETED", "FAILED", "CRASHED"))
                flow_time[kind].append(ts(r["end_time"]) - ts(r["start_time"]))
    metric("flow Running → Completed per stage attempt (median)", "s", round(statistics.median(flow_time["swift"]) / 7, 4), round(statistics.median(flow_time["python"]) / 5, 4),
           note="Swift: 7 stage attempts doing real work (files, two sandboxed unittest runs); Python: 5 trivial tasks")
    if "sw" in globals(): stop(sw)
    # The calls one stage needs, made by a plain client: create the task run, Running, Completed, the stage's artifact,
    # the progress artifact's update.
    raw = []
    run = call("POST", "/flow_runs/", json={"flow_id": call("POST", "/flows/", json={"name": "bench-raw"})["id"]})
    call("POST", f"/flow_runs/{run['id']}/set_state", json={"state": {"type": "RUNNING"}})
    progress = call("POST", "/artifacts/", json={"type": "progress", "data": 0, "flow_run_id": run["id"]})
    for i in range(20):
        t0 = time.time()
        t = call("POST", "/task_runs/", json={"flow_run_id": run["id"], "task_key": "raw", "dynamic_key": str(i), "name": f"raw-{i}"})
        call("POST", f"/task_runs/{t['id']}/set_state", json={"state": {"type": "RUNNING"}})
        call("POST", f"/task_runs/{t['id']}/set_state", json={"state": {"type": "COMPLETED"}})
        call("POST", "/artifacts/", json={"key": "raw", "type": "markdown", "data": "x", "flow_run_id": run["id"], "task_run_id": t["id"]})
        call("PATCH", f"/artifacts/{progress['id']}", json={"data": i})
        raw.append(time.time() - t0)
    raw_stage = statistics.median(raw)
    # The package's worker behind a request-logging proxy, one run at a time: overhead = the run's Running → end
    # minus the stages' own work (TRACE.json), next to the requests the worker made for the run in that window.
    request_log = f"{OUT}/requests.log"
    if os.path.exists(request_log): os.remove(request_log)
    lp, lapi, _ = proxy("log-proxy", request_log)
    lw = start_swift("overhead-swift", lapi)
    polls = ("/get_scheduled_flow_runs", "/workers/heartbeat", "/flow_runs/filter")
    rows = []
    for i in range(3 if QUICK else 8):
        r = wait_run(create(SWIFT_DEP, {"gates": "default"}), lambda r: r["state_type"] in ("COMPLETED", "FAILED", "CRASHED"))
        start, end = ts(r["start_time"]), ts(r["end_time"])
        trace = json.load(open(f"{SWIFT_DIR}/state/runs/{r['id']}/TRACE.json"))
        stages = [e for e in trace["entries"] if e["kind"] == "stage"]
        work = sum(ts(e["ended_at"]) - ts(e["started_at"]) for e in stages)
        time.sleep(1)  # the proxy's log is written after each answer
        reqs = [l.split() for l in open(request_log)]
        mine = [(float(a), float(b), path) for a, b, m, path, st in reqs if start - 0.05 <= float(a) <= end and not path.endswith(polls)]
        rows.append({"attempts": len(stages), "overhead": (end - start - work) / len(stages), "requests": len(mine) / len(stages),
                     "round_trips": sum(b - a for a, b, _ in mine) / len(stages)})
    stop(lw); stop(lp)
    over = statistics.median(x["overhead"] for x in rows); rt = statistics.median(x["round_trips"] for x in rows)
    nreq = statistics.median(x["requests"] for x in rows)
    results["per_stage"] = {"runs": rows, "raw_client_stage_s": raw_stage}
    metric("orchestration overhead per stage attempt (Running → end minus the stages' work, median)", "s", round(over, 4), None,
           note=f"its API round trips: {nreq:.1f} requests, {rt:.4f} s per stage attempt (overhead / round trips = {over / rt:.2f}, target ≤ 2); "
                f"a plain client making one stage's 5 calls: {raw_stage:.4f} s; through a logging proxy")

if "sw" in globals(): stop(sw); stop(py)

# ---------- 7. N runs end to end through one worker (limit 4 each); before phase 6, whose 1,000+ cancelled runs
# keep the server's background services busy for minutes ----------
if "7" in PHASES:
    def e2e(kind):
        dep, params = (SWIFT_DEP, {"gates": "default"}) if kind == "swift" else (PY_DEP, {})
        ids = [create(dep, params) for _ in range(N_E2E)]
        t0 = time.time()
        p = start_swift("e2e-swift") if kind == "swift" else start_python("e2e-python", limit=4)
        for rid in ids: wait_run(rid, lambda r: r["state_type"] in ("COMPLETED", "FAILED", "CRASHED"), timeout=1800)
        wall = time.time() - t0
        stop(p)
        return wall
    wall = {"swift": e2e("swift"), "python": e2e("python")}
    metric(f"{N_E2E} runs end to end, one worker (limit 4), wall time", "s", round(wall["swift"], 1), round(wall["python"], 1))
    metric(f"{N_E2E} runs end to end, runs per minute", "runs/min", round(N_E2E / wall["swift"] * 60, 1), round(N_E2E / wall["python"] * 60, 1), better="higher")

# ---------- 6. API requests per poll interval while runs wait at a gate ----------
if "6" in PHASES:
    def count(url): return int(httpx.get(url).text)

    req = {"swift": {}, "python": {}}
    sp, sapi, scount = proxy("swift-proxy"); pp, papi, pcount = proxy("python-proxy")
    sw, py = start_swift("count-swift", sapi), start_python("count-python", papi, limit=10)
    time.sleep(15)
    waiting = {"swift": 0, "python": 0}; lost = {"swift": 0, "python": 0}
    def count_runs(dep, types):
        return call("POST", "/flow_runs/count", json={"flow_runs": {"deployment_id": {"any_": [dep]}, "state": {"type": {"any_": types}}}})
    levels = [(n, ("swift", "python")) for n in WAITING] + [(n, ("swift",)) for n in SWIFT_ONLY_WAITING]
    for n, kinds in levels:
        for kind, dep, params in (("swift", SWIFT_DEP, {"gates": "ask"}), ("python", PY_DEP, {"mode": "suspend"})):
            if kind not in kinds: continue
            while waiting[kind] < n:
                rid = create(dep, params); waiting[kind] += 1
            t0 = time.time()
            # Settled = waiting at the gate, or ended (a worker may lose runs under load: counted below).
            while count_runs(dep, ["SCHEDULED", "PENDING", "RUNNING"]) > 0:
                if time.time() - t0 > 1800: raise SystemExit(f"{kind}: runs did not all settle")
                time.sleep(2)
            log(f"{kind}: {n} runs waiting after {time.time() - t0:.0f} s")
            lost[kind] = count_runs(dep, ["CRASHED", "FAILED"])
        time.sleep(12)
        a = {"swift": count(scount), "python": count(pcount)}
        rss = []
        for _ in range(6): rss.append(rss_kb(tree(sw.pid))); time.sleep(10)
        b = {"swift": count(scount), "python": count(pcount)}
        for kind, interval in (("swift", 0.5), ("python", 10.0)):
            req[kind][n] = {"per_minute": b[kind] - a[kind], "per_interval": round((b[kind] - a[kind]) / (60 / interval), 2)} if kind in kinds else None
        req["swift"][n]["rss_mb"] = round(statistics.median(rss) / 1024, 1)
        metric(f"API requests per minute, {n} runs waiting at a gate", "req/min", req["swift"][n]["per_minute"], req["python"][n]["per_minute"] if "python" in kinds else None,
               note=f"per poll interval: Swift {req['swift'][n]['per_interval']} (0.5 s)" + (f", Python {req['python'][n]['per_interval']} (10 s)" if "python" in kinds else ", Python not measured at this size")
                    + f"; runs lost (crashed) so far: Swift {lost['swift']}, Python {lost['python']}")
        metric(f"Swift worker RSS with {n} runs waiting at a gate", "MB", req["swift"][n]["rss_mb"], None)
    results["requests"] = req
    for p in (sw, py, sp, pp): stop(p)
    for dep in (SWIFT_DEP, PY_DEP):  # clear the waiting runs
        while runs := call("POST", "/flow_runs/filter", json={"flow_runs": {"deployment_id": {"any_": [dep]}, "state": {"type": {"any_": ["PAUSED", "SCHEDULED"]}}}, "limit": 200}):
            for r in runs:
                call("POST", f"/flow_runs/{r['id']}/set_state", json={"state": {"type": "CANCELLED"}, "force": True})

# ---------- report ----------
results["machine"] = {"cores": os.cpu_count(), "prefect": call("GET", "/admin/version"), "date": datetime.utcnow().isoformat() + "Z",
                      "quick": QUICK, "server": f"prefect server ({'PostgreSQL 15' if DB == 'postgres' else 'SQLite'}) on 127.0.0.1"}
json.dump(results, open(f"{OUT}/results-{DB}.json", "w"), indent=2)
lines = ["| metric | Swift worker | Python worker | Swift advantage | note |", "|---|---|---|---|---|"]
for m in results["metrics"]:
    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
    adv = "-" if m["advantage"] is None else f"{m['advantage']:.1f}×"
    lines.append(f"| {m['name']} ({m['unit']}) | {fmt(m['swift'])} | {fmt(m['python'])} | {adv} | {m['note']} |")
md = "\n".join(lines) + "\n"
open(f"{OUT}/results-{DB}.md", "w").write(md)
print(md)
