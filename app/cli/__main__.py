"""`python -m localrag.app.cli ...` is the `localrag` command."""

from localrag.app.cli.main import main

main()
