"""The terminal client (``python clients/urwid_client.py``); it lives in :mod:`chatnet.client`."""

import os
import sys

if __package__ in (None, ""):  # run as a file: the checkout's chatnet, not whatever is installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from chatnet.client.app import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
