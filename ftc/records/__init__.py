"""Dataset records without torch: reading local data files, the formats a record must follow, and checking every
record before a launch writes anything.

The launcher (`ftc launch`, `ftc validate --data`) and the runtime both read data through this package, so the
two cannot disagree.
"""
