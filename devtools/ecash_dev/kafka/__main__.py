"""``python -m ecash_dev.kafka start|stop|status|restart``."""

import sys

from ecash_dev.kafka.cli import main

sys.exit(main())
