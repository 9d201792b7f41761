"""`python -m ops up|down|status|db`: see `ops.supervisor`."""

import sys

from ops.supervisor import main

sys.exit(main())
