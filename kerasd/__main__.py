from kerasd.cli import main

raise SystemExit(main())
