import sys

from error_injection.cli import main

sys.exit(main())
