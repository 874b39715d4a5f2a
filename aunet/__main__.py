"""`python -m aunet ...` runs the command line (as torchrun's `-m aunet train ...` needs)."""
import sys

from aunet.cli import main

sys.exit(main())
