"""``python -m worker.devkafka start|stop|status|restart``."""

import sys

from worker.devkafka.cli import main

sys.exit(main())
