from taskorg.cli.main import main

raise SystemExit(main())
