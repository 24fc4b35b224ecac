"""``python -m ecash_dev.hostile``: the hostile-input run."""

import sys

from ecash_dev.hostile.run import main

sys.exit(main())
