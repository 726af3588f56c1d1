"""``python -m chatnet.client``: the terminal client."""

from chatnet.client.app import main

if __name__ == "__main__":
    raise SystemExit(main())
