import sys

from conveyor_qc.cli import main

sys.exit(main())
