"""``python -m tailorkit`` is the ``tailor`` command, for environments where the package is on the path but not
installed (a checkout on a GPU box)."""

from tailorkit.cli import main

main()
