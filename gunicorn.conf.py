"""gunicorn's settings for the portal's web process (the Procfile and `make run` start
gunicorn from the repository's root, where gunicorn reads this file by default).

Chosen from bench/load.py (README, "Serving"): threaded workers (gthread), because most of a
request's time is waiting on PostgreSQL and Redis and polls are many and short; a sync worker
holds a whole process per request in flight. Two processes per core, four threads each.
Override with WEB_CONCURRENCY (processes), WEB_THREADS and WEB_WORKER_CLASS.
"""

import multiprocessing
import os

worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count()))
threads = int(os.environ.get("WEB_THREADS", 4))
timeout = 60
# Keep-alive: longer than the longest poll interval (30 s) and a proxy's idle timeout, so a poll
# never races the server closing its idle connection (a reset the client sees as an error).
keepalive = 75
# A worker restarts now and then (memory growth of a long-lived process never accumulates).
max_requests = 5000
max_requests_jitter = 500

# The application is loaded once in the master and the workers are forked from it, warmed
# (portal/warmup.py): a worker's first requests cost no imports or template compilation.
preload_app = True


def when_ready(server):
    # Imported here: gunicorn reads this file before Django is set up.
    from portal.warmup import warm_up

    server.log.info("warmed up: %s", warm_up())
