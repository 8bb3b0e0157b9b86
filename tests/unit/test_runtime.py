"""The serving process's garbage collector settings (telemeeting/runtime.py)."""

from __future__ import annotations

import gc

from telemeeting.runtime import GC_OLDER_THRESHOLDS, GC_YOUNG_THRESHOLD, settle_garbage_collector


def test_the_started_process_is_frozen_and_collected_less_often() -> None:
    before = gc.get_threshold()
    try:
        settle_garbage_collector()
        assert gc.get_freeze_count() > 1000  # the modules and objects alive at start
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *GC_OLDER_THRESHOLDS)
        assert before[0] < GC_YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
