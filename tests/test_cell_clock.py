"""The cell's clock charges every second to one part: nested parts and store calls are taken out
of the part they happen in (on a simulated clock, so the arithmetic is exact)."""

from ablate.cell_clock import PARTS, CellClock


class FakeTime:
    def __init__(self):
        self.now, self.store = 0.0, 0.0

    def work(self, seconds):
        self.now += seconds

    def call_store(self, seconds):
        self.now += seconds
        self.store += seconds


def test_nested_parts_and_store_time_are_charged_once():
    fake = FakeTime()
    clock = CellClock(lambda: fake.store, now=lambda: fake.now)

    def checkpoint():
        fake.work(5.0)
        fake.call_store(2.0)

    timed_checkpoint = clock.timed("checkpoints", checkpoint)
    with clock.part("train"):
        fake.work(10.0)
        fake.call_store(3.0)
        timed_checkpoint()
        fake.work(1.0)
    with clock.part("eval"):
        fake.work(4.0)
    assert clock.seconds["train"] == 11.0 and clock.seconds["checkpoints"] == 5.0 and clock.seconds["eval"] == 4.0
    assert clock.seconds["logging"] == 5.0  # both store calls, each once
    assert sum(clock.seconds.values()) == fake.now  # every second charged exactly once
    assert set(clock.seconds) == set(PARTS)


def test_move_charges_time_measured_inside_another_part_elsewhere():
    clock = CellClock()
    clock.add("train", 3.0)
    clock.move("train", "data", 1.0)
    clock.move("train", "data", 5.0)  # never more than the part holds
    assert clock.seconds["train"] == 0.0 and clock.seconds["data"] == 3.0
