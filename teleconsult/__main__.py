from teleconsult.cli import main

raise SystemExit(main())
