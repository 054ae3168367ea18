"""`python -m agent` is `trading-agent`."""
import sys

from agent.cli import main

sys.exit(main())
