"""radtl's command line from a checkout: `python cli.py --help` (installed: `radtl --help`).

The commands live in `radtl/cli.py`; this file only calls them.
"""
from radtl.cli import main

if __name__ == "__main__":
    main()
