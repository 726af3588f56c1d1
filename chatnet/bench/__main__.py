"""``python -m chatnet.bench``: the same as ``chatnet-bench``."""
import sys

from chatnet.bench.cli import main

sys.exit(main())
