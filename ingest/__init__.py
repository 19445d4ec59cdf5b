# A stale compiled build goes before any module of this package is imported (pipeline/compiled.py).
import pipeline  # noqa: F401
