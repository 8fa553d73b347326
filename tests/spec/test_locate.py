import tomllib

from ftc.spec.locate import Position, locate_keys, nearest_position

DOC = '''\
# comment with [brackets] and key = "value"
[model]
name_or_path = "a#b"  # trailing
"quoted.key" = """
line = 2
[not_a_table]
"""
[data]
arr = [1,
  {a = 1, b.c = "x"},
]
[[data.datasets]]
path = 'a'
[[data.datasets]]
path = "b\\"c"
format = "x"
[data.datasets.columns]
prompt = "q"
'''


def test_positions_follow_tables_arrays_and_inline_tables():
    tomllib.loads(DOC)  # the locator only sees documents tomllib accepted
    at = locate_keys(DOC)
    assert at[("model", "name_or_path")] == Position(3, 1)
    assert at[("model", "quoted.key")] == Position(4, 1)
    assert ("not_a_table",) not in at  # inside a multi-line string
    assert at[("data", "arr", 1, "b", "c")] == Position(10, 11)
    assert at[("data", "datasets", 0, "path")].line == 13
    assert at[("data", "datasets", 1, "format")].line == 16
    assert at[("data", "datasets", 1, "columns", "prompt")].line == 18


def test_nearest_position_falls_back_to_the_table():
    at = locate_keys(DOC)
    assert nearest_position(at, ("data", "datasets", 1, "missing")).line == 14
    assert nearest_position(at, ("nowhere",)) is None
