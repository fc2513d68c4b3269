from stylebridge.cli.main import main

raise SystemExit(main())
