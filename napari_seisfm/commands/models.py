"""`seisfm models`: the model cards and whether their weights are installed."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "models",
        help="list model cards and whether their weights are installed",
        description="List the model cards in models/ (id, tokenization, embedding width) and where "
        "their weights are or should be put.",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="also print name, source, citation and licence")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..encoders.registry import DEFAULT_MODEL, checkpoint_path, install_hint, is_installed, list_cards

    cards = list_cards()
    width = max(len(c.id) for c in cards) if cards else 2
    print(f"{'id':<{width}}  {'tokens':<10}  {'dim':>4}  status")
    for c in cards:
        if c.checkpoint is None:
            status = "built in (no weights)"
        elif is_installed(c):
            status = f"installed: {checkpoint_path(c)}"
        else:
            status = install_hint(c)
        mark = " (default)" if c.id == DEFAULT_MODEL else ""
        print(f"{c.id:<{width}}  {c.tokenization:<10}  {c.dim:>4}  {status}{mark}")
        if args.verbose:
            for key in ("name", "source", "citation", "licence", "sha256"):
                value = getattr(c, key)
                if value:
                    print(f"{'':<{width}}    {key}: {value}")
    return 0
