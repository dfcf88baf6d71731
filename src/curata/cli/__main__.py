"""`python -m curata.cli`: the `curata` command."""

from curata.cli.main import main

if __name__ == "__main__":
    main()
