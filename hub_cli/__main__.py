"""`python -m hub_cli ...` is the `hub` command."""

from hub_cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
