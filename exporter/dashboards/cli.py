"""`vigil dashboards`: placeholder until the owning developer replaces it."""


def register(subparsers) -> None:
    return None
