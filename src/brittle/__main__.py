"""``python -m brittle`` is the ``brittle`` command."""

from brittle.cli import main

main()
