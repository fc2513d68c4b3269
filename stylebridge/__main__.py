"""``python -m stylebridge`` (also ``torchrun ... -m stylebridge train featureshift ...``)."""

from stylebridge.cli.main import main

raise SystemExit(main())
