"""What is installed: the extras a run needs, and the installed versions against the tested set
(constraints.txt).
"""
