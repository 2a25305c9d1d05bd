"""What the computer can still give (`medview.core.memory`), and a stack load refused in words, without
allocating, where the memory free cannot hold it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from medview.core import memory
from medview.core.dicom.loader import load_stack, stack_bytes
from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from tests.factories import write_series

MEMINFO = """MemTotal:       24576000 kB
MemFree:         1000000 kB
MemAvailable:    8000000 kB
Buffers:           10000 kB
SwapTotal:       2000000 kB
SwapFree:        1500000 kB
"""


def test_room_is_memavailable_plus_free_swap():
    assert memory._meminfo_room(MEMINFO) == (8000000 + 1500000) * 1024
    assert memory._meminfo_room(MEMINFO.replace("SwapFree", "SwapGone")) == 8000000 * 1024
    assert memory._meminfo_room("MemTotal: 100 kB\n") is None  # a kernel before 3.14: cannot tell


def test_a_control_groups_limit_counts_its_droppable_cache_as_free(tmp_path):
    (tmp_path / "memory.max").write_text("4294967296\n")
    (tmp_path / "memory.current").write_text("3221225472\n")
    (tmp_path / "memory.stat").write_text("anon 2000000000\nfile 1000000000\ninactive_file 536870912\n")
    assert memory._cgroup_room(tmp_path) == (4 << 30) - (3 << 30) + (512 << 20)
    (tmp_path / "memory.max").write_text("max\n")
    assert memory._cgroup_room(tmp_path) is None
    assert memory._cgroup_room(tmp_path / "missing") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/meminfo")
def test_this_computer_has_some_memory_free():
    free = memory.available_memory()
    assert free is not None and free > memory.RESERVE_BYTES


def test_refusal_names_both_sizes(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: memory.RESERVE_BYTES + (1 << 30))
    assert memory.room_for_pixels() == 1 << 30
    assert memory.memory_refusal(1 << 30, "this series") is None
    assert not memory.short_of_memory(1 << 30)
    why = memory.memory_refusal(3 << 30, "this series of 3000 images")
    assert why.startswith("this series of 3000 images needs 3.0 GiB of memory and this computer has 1.0 GiB")
    assert memory.short_of_memory((1 << 30) + 1)
    monkeypatch.setattr(memory, "available_memory", lambda: None)  # cannot tell: nothing is refused
    assert memory.memory_refusal(1 << 40, "this series") is None
    assert not memory.short_of_memory(1 << 40)


def test_a_computer_short_of_memory_keeps_a_quarter_of_it_not_the_whole_reserve(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 200 << 20)  # less than the reserve itself
    assert memory.room_for_pixels() == 150 << 20
    assert memory.memory_refusal(20 << 20, "a small series") is None
    assert memory.memory_refusal(151 << 20, "this series").startswith(
        "this series needs 151 MiB of memory and this computer has 150 MiB free for it")


def _stack(folder):
    files = write_series(folder, 12, modality="CT", rows=64, cols=48)
    studies = build_studies(scan([str(folder)], use_cache=False).instances)
    return files, studies[0].series[0].stacks[0]


def test_a_stack_the_memory_cannot_hold_is_refused_before_it_is_allocated(tmp_path, monkeypatch):
    files, stack = _stack(tmp_path)
    assert stack_bytes(stack) == 12 * 64 * 48 * 2
    monkeypatch.setattr(memory, "available_memory", lambda: stack_bytes(stack))  # a quarter of it kept back
    volume = load_stack(stack, first=3)
    assert volume.array.size == 0 and not volume.loaded.any()
    [error] = volume.errors
    assert error.file == str(files[3])  # the image the reader asked for
    assert error.error.startswith("this series of 12 images needs 0.1 MiB of memory")

    monkeypatch.setattr(memory, "available_memory", lambda: stack_bytes(stack) * 4 // 3)
    volume = load_stack(stack, first=3)
    assert volume.errors == [] and volume.loaded.all() and volume.array.shape == (12, 64, 48)
    assert np.any(volume.array)
