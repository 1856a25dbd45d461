from patchdrop.cli import main

raise SystemExit(main())
