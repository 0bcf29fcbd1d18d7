"""gunicorn hooks for ``bench/read_storm.py --profile FILE``: pyinstrument over each worker's requests.

Each worker profiles the time spent inside its requests (pre_request to post_request) and, when
it exits, writes ``FILE.<pid>.txt`` (and .html): where a served request spends its time.
"""

from __future__ import annotations

import os

_profiler = None


def post_fork(server, worker):
    global _profiler
    from pyinstrument import Profiler

    _profiler = Profiler(interval=0.0005)


def pre_request(worker, req):
    if _profiler is not None and not _profiler.is_running:
        _profiler.start()


def post_request(worker, req, environ, resp):
    if _profiler is not None and _profiler.is_running:
        _profiler.stop()


def worker_exit(server, worker):
    target = os.environ.get("PAMROTATE_BENCH_PROFILE")
    if _profiler is None or not target or _profiler.last_session is None:
        return
    base = f"{target}.{os.getpid()}"
    with open(f"{base}.txt", "w") as out:
        out.write(_profiler.output_text(unicode=True, show_all=False))
    with open(f"{base}.html", "w") as out:
        out.write(_profiler.output_html())
