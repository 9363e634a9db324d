"""gunicorn's settings for this project, read from the working directory by every `gunicorn` started
here: the Procfile's web process, and scripts/bench.py's app and its ceiling alike.

Once a worker has loaded the app, what it holds (modules, the app, SQLAlchemy's mappers, compiled
statements and caches: about 210,000 objects) is set aside from the garbage collector for good
(`gc.freeze`). A full collection walked them all every few thousand requests: an 80 ms pause of the
worker, and the requests queued behind it waited too. Objects made later are collected as before.
"""
import gc


def post_worker_init(worker):
    gc.collect()
    gc.freeze()
