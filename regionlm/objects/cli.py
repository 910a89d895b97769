"""Commands of regionlm.objects (filled in by the work on this package)."""


def add_parser(sub) -> None:
    return None
