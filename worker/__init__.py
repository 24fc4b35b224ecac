"""ecash-worker: moves money through the Mandiri e-cash H2H API, at most once per trace number."""

__version__ = "0.1.0"
