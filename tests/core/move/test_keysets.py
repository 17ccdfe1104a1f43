from app.core.move.keysets import KeySet


def test_integer_ids_and_every_other_key_are_remembered_exactly():
    keys = KeySet()
    for key in [1, 8, 1_000_003, -4, "a", (1, 2), 2 ** 40]:
        keys.add(key)
    assert all(key in keys for key in [1, 8, 1_000_003, -4, "a", (1, 2), 2 ** 40])
    assert not any(key in keys for key in [0, 2, 7, 9, 1_000_002, 5_000_000, "b", (2, 1)])


def test_a_million_ids_take_a_bitmap_not_a_set():
    keys = KeySet()
    for number in range(1, 1_000_001):
        keys.add(number)
    assert len(keys._bits) <= 1_000_001 // 8 * 2 + 1 and not keys._others


def test_a_batch_added_and_looked_up_at_once_answers_as_one_by_one():
    keys = KeySet()
    keys.update([1, None, 8, 1_000_003, -4, "a", (1, 2), 2 ** 40])
    present = [1, 8, 1_000_003, -4, "a", (1, 2), 2 ** 40]
    assert all(key in keys for key in present) and None not in keys
    assert keys.contains_all(present) and keys.contains_all([])
    for absent in [0, 2, 9, 1_000_002, 5_000_000, 2 ** 41, "b", (2, 1)]:
        assert absent not in keys and not keys.contains_all([1, absent])
