"""The floors of the package, lowest first: a module imports from its own part and from lower floors only,
never from a higher one or from another part of its floor (tests/test_floors.py walks every import).

    __main__                            python -m resnetlab
    cli                                 parse arguments, call the library
    experiments                         the papers' experiments (they train)
    train | deploy                      the loop; export and runtimes (neither imports the other)
    inspect | checkpoints | evaluation | plots
                                        the layer table; the checkpoint format and loading what was saved;
                                        a model over a split (test-time augmentation, sharded); figures
    models                              the ResNets, the registry, the model interface, create_model
    nn | data                           layers and batch norm; data sources, augmentation, loaders
    hardware | pretrained               the CPU; the shipped weight files (read and written)
    errors | version                    the error bad input raises; the version

The package itself (``resnetlab/__init__.py``) stands above them all: it is the API, and loads ``train`` and
``deploy`` lazily."""

FLOORS: tuple[tuple[str, ...], ...] = (
    ("errors", "version", "_floors"),
    ("hardware", "pretrained"),
    ("nn", "data"),
    ("models",),
    ("inspect", "checkpoints", "evaluation", "plots"),
    ("train", "deploy"),
    ("experiments",),
    ("cli",),
    ("__main__",),
)


def floor(part: str) -> int:
    """The floor of a part of the package (its first name under ``resnetlab``)."""
    for level, parts in enumerate(FLOORS):
        if part in parts:
            return level
    raise KeyError(f"{part!r} is on no floor: add it to resnetlab._floors.FLOORS")
