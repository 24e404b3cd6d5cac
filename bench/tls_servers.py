"""Which WSGI server serves taskorg: idle CPU, memory and requests/s on loopback.

Each candidate serves one small JSON route of a Flask app in its own process;
a client of 4 threads (keep-alive sessions) asks it for a bounded time.
Candidates: waitress (the old server: no TLS at all), cheroot plain and with
TLS and client-certificate verification (taskorg.net.httpd), gunicorn gthread
with TLS (`pip install gunicorn==27.0.1`;
waitress and gunicorn are no dependencies of taskorg: each is skipped when absent).

    .venv/bin/python bench/tls_servers.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import requests  # noqa: E402

from taskorg.security import ca, tls  # noqa: E402

SERVE = r'''
import sys
from flask import Flask
kind, host, port, cert, key, cafile = sys.argv[1:7]
app = Flask("bench")
@app.get("/v1/ping")
def ping():
    return {"ok": True, "pad": "x" * 200}
if kind == "waitress":
    from waitress import serve
    serve(app, host=host, port=int(port), threads=8, _quiet=True)
elif kind == "cheroot-stock-tls":
    from cheroot import wsgi
    from cheroot.ssl.builtin import BuiltinSSLAdapter
    server = wsgi.Server((host, int(port)), app, numthreads=8, request_queue_size=1024)
    server.ssl_adapter = BuiltinSSLAdapter(cert, key)
    server.safe_start()
elif kind.startswith("cheroot"):
    from taskorg.net.httpd import make_server, run_servers
    from taskorg.security.tls import TlsMaterial
    context = TlsMaterial(cafile, cert, key).server_context() if kind == "cheroot-tls" else None
    run_servers([make_server(app, host, int(port), 8, context, cert, key)])
else:
    import ssl
    from gunicorn.app.base import BaseApplication
    class App(BaseApplication):
        def load_config(self):
            for k, v in dict(bind=f"{host}:{port}", workers=1, worker_class="gthread", threads=8,
                             certfile=cert, keyfile=key, ca_certs=cafile, cert_reqs=ssl.CERT_OPTIONAL,
                             loglevel="warning").items():
                self.cfg.set(k, v)
        def load(self):
            return app
    App().run()
'''


def measure(kind: str, port: int, material: tls.TlsMaterial, seconds: float) -> dict[str, Any]:
    host = "127.0.0.1"
    process = subprocess.Popen([sys.executable, "-c", SERVE, kind, host, str(port), material.cert_file,
                                material.key_file, material.ca_file], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scheme = "https" if kind.endswith("tls") else "http"
    url = f"{scheme}://{host}:{port}/v1/ping"

    def session() -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        tls.mount(s, host, material)
        return s

    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                session().get(url, timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or process.poll() is not None:
                    return {"server": kind, "error": "did not start"}
                time.sleep(0.1)
        proc = psutil.Process(process.pid)
        time.sleep(1)
        cpu0 = proc.cpu_times()
        time.sleep(5)
        cpu1 = proc.cpu_times()
        idle_cpu = max(0.0, (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / 5 * 100)
        counts = [0] * 4
        stop = time.monotonic() + seconds

        def load(i: int) -> None:
            s = session()
            while time.monotonic() < stop:
                s.get(url, timeout=5).raise_for_status()
                counts[i] += 1

        threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rss = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
        return {"server": kind, "idle_cpu_percent": round(idle_cpu, 2), "rss_mib": round(rss / 2**20, 1),
                "requests_per_s": round(sum(counts) / seconds)}
    finally:
        for child in psutil.Process(process.pid).children(recursive=True):
            child.kill()
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ca.init_ca(Path(tmp) / "ca", "bench")
        issued = ca.issue(Path(tmp) / "ca", "bench", ["127.0.0.1"], "bench.internal")
        material = tls.TlsMaterial(str(Path(tmp) / "ca" / "ca.pem"), str(issued.cert_file), str(issued.key_file))
        kinds = [k for k, module in (("waitress", "waitress"), ("cheroot", "cheroot"), ("cheroot-tls", "cheroot"),
                                     ("cheroot-stock-tls", "cheroot"),
                                     ("gunicorn-tls", "gunicorn")) if importlib.util.find_spec(module)]
        results = [measure(kind, 29400 + i, material, args.seconds) for i, kind in enumerate(kinds)]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
