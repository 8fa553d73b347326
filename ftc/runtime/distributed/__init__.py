"""The runtime's process: its start-up, the device backend and process group, the collectives, preemption signals
and resuming.
"""
