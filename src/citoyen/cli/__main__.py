"""``python -m citoyen.cli``: the same command as ``citoyen``."""

from citoyen.cli import main

main()
