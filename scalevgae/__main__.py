"""``python -m scalevgae`` runs the command line (see scalevgae.cli)."""

from scalevgae.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
