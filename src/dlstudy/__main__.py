import sys

from dlstudy.cli import main

sys.exit(main())
