"""ticketzoo: a model zoo and registry for sparse lottery tickets."""

__version__ = "0.1.0"
