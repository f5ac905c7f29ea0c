"""`python -m app` and the `app` console script: see app/cli/."""

from app.cli import main

if __name__ == "__main__":
    main()
