"""``python -m losskit``: the losskit command line (see :mod:`losskit.cli`)."""

from losskit.cli import main

if __name__ == "__main__":
    main()
