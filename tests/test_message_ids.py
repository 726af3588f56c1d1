"""Message ids (chatnet.domain.messages.new_object_id): MongoDB's ObjectId layout,
unique in a process and across a fork."""
import os
import time

import pytest
from bson import ObjectId

from chatnet.domain.messages import new_object_id


def test_ids_are_objectids_of_now_and_unique():
    ids = [new_object_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    assert all(isinstance(i, ObjectId) for i in ids[:10])
    assert abs(ids[0].generation_time.timestamp() - time.time()) < 5
    # the counter goes up within the process's random part
    assert ids[0].binary[4:9] == ids[-1].binary[4:9]


@pytest.mark.process  # a forked child
def test_a_forked_child_makes_other_ids():
    parent = new_object_id().binary[4:9]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_object_id().binary[4:9])
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 5) != parent
