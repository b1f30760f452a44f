import sys

from recommenders.cli import main

sys.exit(main())
