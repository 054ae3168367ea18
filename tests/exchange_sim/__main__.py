"""python -m tests.exchange_sim --help: the simulator as a process (see cli.py)."""
from tests.exchange_sim.cli import main

raise SystemExit(main())
