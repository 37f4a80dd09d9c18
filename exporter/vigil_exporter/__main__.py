import sys

from vigil_exporter.cli import main

sys.exit(main())
