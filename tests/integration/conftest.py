import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pylib"))
from refuge import Node  # noqa: E402


@pytest.fixture
def workdir(tmp_path):
    return str(tmp_path)


@pytest.fixture
def node(workdir):
    n = Node(workdir).start()
    yield n
    n.kill()
