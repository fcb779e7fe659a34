from takt_mcp.cli import main

raise SystemExit(main())
