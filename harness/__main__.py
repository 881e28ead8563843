"""``python -m harness`` does what the ``graylink`` command does."""

import sys

from harness.cli import main

sys.exit(main())
