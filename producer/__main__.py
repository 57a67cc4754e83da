"""``python -m producer``: see producer/cli.py."""

from producer.cli import main

if __name__ == "__main__":
    main()
