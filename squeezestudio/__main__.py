"""``python -m squeezestudio`` runs the same entry point as the ``squeezestudio`` command."""

from squeezestudio.cli.main import main

raise SystemExit(main())
