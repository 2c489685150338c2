"""``python -m jcl``."""

import sys

from jcl.cli import main

sys.exit(main())
