"""``python -m ecash_dev.chaos``: the chaos run (also ``ecash-worker chaos``)."""

import sys

from ecash_dev.chaos.run import main

sys.exit(main())
