"""`python -m rankmap_ros` is the `rankmap` command."""

import sys

from rankmap_ros.cli import main

sys.exit(main())
