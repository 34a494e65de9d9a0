"""Keras slow paths on the worker's critical path, avoided without changing what Keras writes.

Saving (`model.save`, `save_weights`: every epoch's checkpoint and the exported artifacts) walks the model and
skips the attributes every Layer, Optimizer, Metric, ... has; Keras computes those sets by constructing a
throwaway object of each kind (an Optimizer creates TensorFlow variables) and means to keep them in its
global state, but reads them back under another key (`saving_attr_skiplist_*` against the
`saving_attr_skipset_*` it stores, Keras 3.15), so it rebuilds them on every save. Storing the same sets
under the key Keras reads makes that cache work; the sets are Keras's own, so files are unchanged.
"""

from __future__ import annotations

import logging

from app.specchecker import compat

log = logging.getLogger("kerasd.worker")

SKIPSET_KINDS = ("Operation", "Layer", "Functional", "Sequential", "Metric", "Optimizer", "Loss")


def prime_saving_caches() -> None:
    """Idempotent; a no-op on a Keras whose cache already works or that no longer has these internals."""
    try:
        global_state = compat.global_state()
    except ImportError:
        return
    for kind in SKIPSET_KINDS:
        read_key, written_key = f"saving_attr_skiplist_{kind}", f"saving_attr_skipset_{kind}"
        if global_state.get_global_attribute(read_key, None) is not None:
            continue
        try:
            skipset = global_state.get_global_attribute(written_key, None) or compat.saving_attr_skipset(kind)
        except Exception:  # a Keras that changed these internals: leave it to Keras
            log.debug("could not prime Keras's saving skipset for %s", kind, exc_info=True)
            return
        global_state.set_global_attribute(read_key, skipset)
