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
