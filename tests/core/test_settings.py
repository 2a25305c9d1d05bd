"""The typed preferences: defaults, what a store gives back read as the declared types, bad values refused."""

from __future__ import annotations

import dataclasses

import pytest

from medview.core.settings import KEYS, RECENT_MAX, MemoryStore, Preferences, Settings


def test_every_preference_has_a_storage_key_and_a_first_start_default():
    assert set(KEYS) == {f.name for f in dataclasses.fields(Preferences)}
    assert Settings(MemoryStore()).preferences() == Preferences()
    assert Preferences().ai_device == "auto" and Preferences().cine_fps == 15 and not Preferences().pacs_listen


def test_values_as_an_ini_file_gives_them_back_are_read_as_their_types():
    """QSettings' INI format returns every scalar as text and a one-item list as a plain string."""
    store = MemoryStore({"pacs/listen": "true", "pacs/send_on_sign_off": "false", "viewer/cine_fps": "24",
                         "recent": "/data/one", "ai/device": "cuda"})
    prefs = Settings(store).preferences()
    assert prefs.pacs_listen is True and prefs.pacs_send_on_sign_off is False
    assert prefs.cine_fps == 24 and prefs.recent == ("/data/one",) and prefs.ai_device == "cuda"


def test_unusable_stored_values_read_as_the_defaults():
    store = MemoryStore({"viewer/cine_fps": "fast", "ai/device": "tpu", "pacs/listen": "maybe"})
    prefs = Settings(store).preferences()
    assert (prefs.cine_fps, prefs.ai_device, prefs.pacs_listen) == (15, "auto", False)


def test_update_writes_typed_values_and_refuses_the_wrong_type():
    settings = Settings(MemoryStore())
    settings.update(cine_fps=30, pacs_listen=True, recent=["/a", "/b"])
    assert settings.store.values["viewer/cine_fps"] == 30 and settings.store.values["recent"] == ["/a", "/b"]
    assert settings.get("recent") == ("/a", "/b")
    with pytest.raises(TypeError):
        settings.update(cine_fps="30")
    with pytest.raises(TypeError):
        settings.update(pacs_listen=1)
    with pytest.raises(ValueError):
        settings.update(ai_device="tpu")
    with pytest.raises(AttributeError):
        settings.update(colour="blue")


def test_recent_locations_newest_first_once_and_bounded():
    settings = Settings(MemoryStore())
    for n in range(RECENT_MAX + 3):
        settings.add_recent(f"/data/{n}")
    settings.add_recent("/data/5")
    recent = settings.get("recent")
    assert recent[0] == "/data/5" and len(recent) == RECENT_MAX and recent.count("/data/5") == 1
    assert "/data/0" not in recent


def test_thresholds_per_model_only_numbers_in_0_1_and_replaced_as_a_whole():
    settings = Settings(MemoryStore())
    settings.set_thresholds("my model/2", {"cardiomegaly": 0.4, "effusion": 0.7})
    assert settings.store.values["ai/thresholds/my_model_2/cardiomegaly"] == 0.4  # one key level per name
    assert settings.thresholds("my model/2", ["cardiomegaly", "effusion", "nodule"]) == {"cardiomegaly": 0.4,
                                                                                          "effusion": 0.7}
    assert settings.thresholds("other", ["cardiomegaly"]) == {}
    settings.set_thresholds("my model/2", {"effusion": 0.6})
    assert settings.thresholds("my model/2", ["cardiomegaly", "effusion"]) == {"effusion": 0.6}
    settings.store.values["ai/thresholds/my_model_2/effusion"] = "1.5"  # edited by hand: not a threshold
    settings.store.values["ai/thresholds/my_model_2/cardiomegaly"] = "nan"
    assert settings.thresholds("my model/2", ["cardiomegaly", "effusion"]) == {}


def test_keymap_overrides_round_trip_with_an_action_left_without_keys():
    settings = Settings(MemoryStore())
    settings.set_keymap({"image.next": ["J"], "view.invert": []})
    assert settings.store.values["keymap/view.invert"] == [""]
    assert settings.keymap() == {"image.next": ["J"], "view.invert": []}
    settings.set_keymap({})
    assert settings.keymap() == {}


def test_window_layout_keeps_bytes_and_ignores_what_is_not():
    settings = Settings(MemoryStore({"window/state": "garbage"}))
    assert settings.window_layout() == {}
    settings.set_window_layout(geometry=b"\x01\x02", splitter=b"\x03")
    assert settings.window_layout() == {"geometry": b"\x01\x02", "splitter": b"\x03"}
    with pytest.raises(AttributeError):
        settings.set_window_layout(size=b"")
