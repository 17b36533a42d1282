#!/usr/bin/env python3
"""scripts/faults driver: real faults against a real Prefect server and real worker processes.
Environment (set by scripts/faults): FAULTS_API, FAULTS_PORT, FAULTS_HOME, FAULTS_ROOT, FAULTS_BIN, FAULTS_VENV,
FAULTS_OUT, FAULTS_QUICK. Prints one line per fault and a last line 'faults: N held, M broke'."""
import json, os, shutil, signal, subprocess, sys, time, uuid
import httpx

API = os.environ["FAULTS_API"]; ROOT = os.environ["FAULTS_ROOT"]; BIN = os.environ["FAULTS_BIN"]
VENV = os.environ["FAULTS_VENV"]; OUT = os.environ["FAULTS_OUT"]; QUICK = os.environ.get("FAULTS_QUICK") == "1"
http = httpx.Client(base_url=API, timeout=30)
report = []

def log(*a): print("faults:", *a, file=sys.stderr, flush=True)

def call(method, path, **kw):
    for attempt in range(40):
        try:
            r = http.request(method, path, **kw)
            if r.status_code not in (408, 429, 502, 503): break
        except httpx.TransportError:
            pass
        time.sleep(min(4, 0.25 * 2 ** attempt))
    r.raise_for_status()
    return r.json() if r.content else None

def penv(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and not k.startswith("AUTONOMY_")}
    env.update({"PREFECT_API_URL": API, "PREFECT_HOME": f"{OUT}/cli"}); env.update(extra or {})
    return env

def project(name, test_command="python3 -m unittest discover", extra=""):
    d = f"{OUT}/{name}"; shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
    shutil.copytree(f"{ROOT}/templates", f"{d}/templates")
    pool = f"faults-{name}-{uuid.uuid4().hex[:6]}"
    open(f"{d}/prefect.yaml", "w").write(f"deployments:\n  - name: {pool}\n    parameters: {{project: example, gates: default}}\n    work_pool: {{name: {pool}}}\n")
    open(f"{d}/config.yml", "w").write(f"prefect: {{work_pool: {pool}}}\nworker: {{limit: 2, api_unreachable_exit_after: 120s}}\nstate_dir: state\ntest: {{command: \"{test_command}\", timeout: 60s}}\n{extra}")
    subprocess.run([BIN, "deploy", "--config", f"{d}/config.yml"], env=penv(), check=True, capture_output=True)
    return d, pool, call("GET", f"/deployments/name/autonomous-build/{pool}")["id"]

def worker(d, name, env=None, wrapper=None):
    cmd = [BIN, "worker", "--config", f"{d}/config.yml", "--name", name]
    return subprocess.Popen((wrapper or []) + cmd, env=penv(env), stdout=open(f"{d}/{name}.log", "a"), stderr=subprocess.STDOUT, start_new_session=True)

def stop(p):
    try: os.killpg(p.pid, signal.SIGTERM); p.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try: os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError: pass

def create(dep): return call("POST", f"/deployments/{dep}/create_flow_run", json={"parameters": {}})["id"]

def wait_until(what, done, timeout=120, step=0.2):
    """Polls done() until it holds; after `timeout` seconds the fault run stops with what it waited for."""
    t0 = time.time()
    while not done():
        if time.time() - t0 > timeout: raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(step)

def final(rid, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        r = call("GET", f"/flow_runs/{rid}")
        if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"): return r
        time.sleep(0.5)
    return call("GET", f"/flow_runs/{rid}")

# The offline build: the first implementation fails one test, one fix round passes. Each attempt runs once.
EXPECTED = {s: 1 for s in ("bootstrap-1", "design-1", "implement-1", "test-1", "implement-2", "test-2", "verify-1")}


def stage_counts(d, rid):
    t = json.load(open(f"{d}/state/runs/{rid}/TRACE.json"))
    counts = {}
    for e in t["entries"]:
        if e["kind"] == "stage" and e["status"] == "completed":
            key = "%s-%s" % (e["stage"], e["attempt"])
            counts[key] = counts.get(key, 0) + 1
    return counts

def outcome(name, held, detail):
    report.append((name, held, detail)); log(("HELD  " if held else "BROKE ") + f"{name}: {detail}")

def server_restart():
    d, pool, dep = project("restart", test_command="sleep 6; python3 -m unittest discover")
    w = worker(d, "w-restart")
    rid = create(dep)
    wait_until("the run's test stage", lambda: os.path.exists(f"{d}/state/runs/{rid}/tests/MANIFEST.json"))
    pid = int(open(f"{os.environ['FAULTS_HOME']}/server.pid").read())
    t0 = time.time()
    os.killpg(pid, signal.SIGTERM)
    def gone():
        try: os.kill(pid, 0); return False
        except ProcessLookupError: return True
    wait_until("the Prefect server to exit", gone, timeout=60)
    subprocess.run(["bash", "-c", f"source {ROOT}/scripts/lib.sh && start_server {os.environ['FAULTS_PORT']} {os.environ['FAULTS_HOME']}"], check=True)
    down = time.time() - t0
    r = final(rid)
    counts = stage_counts(d, rid) if r["state_type"] == "COMPLETED" else {}
    stop(w)
    held = r["state_type"] == "COMPLETED" and counts == EXPECTED and w.returncode == 0
    outcome("Prefect server killed and restarted mid-run", held, f"server down {down:.1f} s; run {r['state_name']}; stage executions {counts}; worker exit {w.returncode}")

def race(workers=3, runs=20):
    d, pool, dep = project("race")
    ids = [create(dep) for _ in range(runs)]
    ws = [worker(d, f"w{i}") for i in range(workers)]
    states = [final(r)["state_type"] for r in ids]
    once = all(stage_counts(d, r) == EXPECTED for r in ids)
    by = {}
    for r in ids:
        name = call("GET", f"/flow_runs/{r}")["labels"].get("prefect.worker.name"); by[name] = by.get(name, 0) + 1
    for w in ws: stop(w)
    outcome(f"{workers} workers racing on one pool with {runs} runs", states.count("COMPLETED") == runs and once,
            f"{states.count('COMPLETED')}/{runs} completed, each stage attempt executed once per run (from TRACE.json): {once}; runs per worker {by}")

def state_faults():
    # One run's folder is read-only, another's is a 16 KiB tmpfs, in the worker's own mount namespace; a third run is normal.
    d, pool, dep = project("statefaults")
    ro, full, ok = create(dep), create(dep), None
    for rid in (ro, full): os.makedirs(f"{d}/state/runs/{rid}")
    script = (f"mount --bind {d}/state/runs/{ro} {d}/state/runs/{ro} && mount -o remount,ro,bind {d}/state/runs/{ro} && "
              f"mount -t tmpfs -o size=16k tmpfs {d}/state/runs/{full} && exec \"$@\"")
    w = worker(d, "w-state", wrapper=["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"])
    r_ro, r_full = final(ro), final(full)
    ok = create(dep); r_ok = final(ok)
    stop(w)
    held_ro = r_ro["state_type"] in ("FAILED", "CRASHED") and f"runs/{ro}" in (r_ro["state"]["message"] or "") and "Read-only" in (r_ro["state"]["message"] or "")
    held_full = r_full["state_type"] in ("FAILED", "CRASHED") and f"runs/{full}" in (r_full["state"]["message"] or "") and "No space left" in (r_full["state"]["message"] or "")
    outcome("state folder read-only", held_ro, f"{r_ro['state_name']}: {r_ro['state']['message']}")
    outcome("disk full (16 KiB tmpfs)", held_full, f"{r_full['state_name']}: {r_full['state']['message']}")
    outcome("worker keeps serving other runs after both", r_ok["state_type"] == "COMPLETED", f"next run {r_ok['state_name']}")

def flaky_api(runs=4):
    d, pool, dep = project("flaky")
    pf = f"{OUT}/flaky.port"
    if os.path.exists(pf): os.remove(pf)
    proxy = subprocess.Popen([f"{VENV}/bin/python", f"{ROOT}/scripts/faults.d/fault_proxy.py", pf, API.rsplit('/api', 1)[0]], start_new_session=True)
    wait_until("the fault proxy's port", lambda: os.path.exists(pf), timeout=30, step=0.05)
    port = open(pf).read()
    w = worker(d, "w-flaky", env={"PREFECT_API_URL": f"http://127.0.0.1:{port}/api"})
    ids = [create(dep) for _ in range(runs)]
    states = [final(r)["state_type"] for r in ids]
    stats = httpx.get(f"http://127.0.0.1:{port}/__stats").json()
    alive = w.poll() is None
    stop(w); stop(proxy)
    outcome("API answering 503, 500 and garbage through a fault proxy", states.count("COMPLETED") == runs and alive,
            f"{states.count('COMPLETED')}/{runs} completed, worker alive: {alive}; injected {stats}")

def unreachable():
    d, pool, dep = project("unreachable", extra="")
    open(f"{d}/config.yml", "a").write("")
    t0 = time.time()
    p = subprocess.run([BIN, "worker", "--config", f"{d}/config.yml"], env=penv({"PREFECT_API_URL": "http://127.0.0.1:1/api", "AUTONOMY_API_UNREACHABLE_EXIT_AFTER": "10s"}), capture_output=True, text=True, timeout=120)
    took = time.time() - t0
    line = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    outcome("API unreachable longer than api_unreachable_exit_after (10 s)", p.returncode == 69 and took < 20, f"exit {p.returncode} after {took:.1f} s: {line}")

for fault in ([unreachable, state_faults, flaky_api, server_restart] if QUICK else [unreachable, state_faults, flaky_api, race, server_restart]):
    try:
        fault()
    except Exception as e:  # a fault that could not even be staged counts as broken
        outcome(fault.__name__, False, f"{type(e).__name__}: {e}")
held = sum(1 for _, h, _ in report if h)
json.dump([{"fault": n, "held": h, "detail": d} for n, h, d in report], open(f"{OUT}/results.json", "w"), indent=2)
print("\n".join(f"| {n} | {'held' if h else 'BROKE'} | {d} |" for n, h, d in report))
print(f"faults: {held} held, {len(report) - held} broke")
sys.exit(0 if held == len(report) else 1)
