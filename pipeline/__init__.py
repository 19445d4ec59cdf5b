# First of all: a stale compiled build must not shadow an edited source (pipeline/compiled.py).
from pipeline.compiled import drop_stale

drop_stale()
