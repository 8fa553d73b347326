"""The lockfile: everything that decides a run, recorded so that a later run can prove it is the same.

`record.py` builds the document (pure, from values gathered at the edge), `inputs.py` gathers those
values (file hashes, library versions), `hub_pins.py` the commit each hub input stands for, `drift.py`
compares two documents, `files.py` reads and writes SPEC.lock atomically.
"""
