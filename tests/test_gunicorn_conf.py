"""gunicorn.conf.py: what every gunicorn started from the project's directory does to its workers."""
import gc
import runpy
from pathlib import Path

CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


def test_a_worker_sets_what_it_loaded_aside_from_the_garbage_collector():
    hooks = runpy.run_path(str(CONF))
    loaded_before = len(gc.get_objects())
    try:
        hooks["post_worker_init"](worker=None)

        assert gc.get_freeze_count() >= loaded_before // 2  # the app's objects, not a handful
        assert len(gc.get_objects()) < loaded_before  # the collector no longer walks them
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
