"""The order in which the tests are handed to the worker processes: the
files whose tests wait longest first.

The workers take tests in collection order. A test that waits seconds on a
stalled or restarting store, drawn last, keeps the whole run waiting on one
worker while the others are idle; handed out first, these waits overlap the
many short tests on the other workers. The weights are the seconds each
file took in a run on one worker (``scripts/run-tests --fast --durations=0``
with ``CHATNET_FAST_WORKERS=0``); a file not listed weighs nothing and keeps
its place. Only the order changes: which tests run and what they check do
not.
"""
import pytest

#: seconds a file's tests took on one worker, the longest first
WEIGHTS = {
    "test_store_recovery.py": 19,
    "test_message_log_store.py": 14,
    "test_loadgen_units.py": 13,
    "test_sentinel.py": 12,
    "test_localservices.py": 11,
    "test_live_inprocess.py": 9,
    "test_bench_socketio_units.py": 6,
    "test_adapters_txredisapi.py": 6,
    "test_handlers_inprocess.py": 5,
    "test_room_state_inprocess.py": 4,
    "test_room_marks_inprocess.py": 4,
    "test_text_cost.py": 3,
    "test_moderation.py": 3,
    "test_zookeeper_auth.py": 3,
    "test_library_internals.py": 3,
    "test_adapters_amp.py": 3,
}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    # a stable sort: the tests of a file keep their order
    items.sort(key=lambda item: -WEIGHTS.get(item.path.name, 0))
