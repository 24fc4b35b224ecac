"""``python -m ecash_dev.demo``: what ``make demo`` runs (also ``ecash-worker demo``)."""

import sys

from ecash_dev.demo.run import main

sys.exit(main())
