"""Sample libraries as instruments: every voice option sounds over its whole range, and a
planned performance stays inside its instrument and its clip, for any seed."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import soundfonts
from helpers.demo import ALL_LIBRARIES, DEMO_CLASSES, TWO_SOUNDFONTS, DemoConfig

TINY = DemoConfig(clips_per_class=4)


@cache
def two_soundfonts() -> soundfonts.Catalogue:
    return soundfonts.load_catalogue(TWO_SOUNDFONTS, drop_duplicates=False, progress=False)


def test_every_voice_sounds_at_both_ends_of_its_range():
    """Each class's voice options, in each SoundFont, kit and at its lowest and highest key,
    are audible."""
    catalogue = two_soundfonts()
    assert catalogue.libraries == TWO_SOUNDFONTS and not catalogue.missing
    for library, classes in catalogue.options.items():
        assert set(classes) == set(DEMO_CLASSES), library  # both sound every demo class
        for options in classes.values():
            for o in options:
                keys = o.keys if o.voice.is_drum else (min(o.keys), max(o.keys))
                for key in keys:
                    perf = soundfonts.Performance(o.font, o.bank, o.program, o.voice.is_drum,
                                                  "note", (soundfonts.Note(0.0, key, 100, 0.3),),
                                                  0.5)
                    y = soundfonts.render_performance(perf, catalogue.fonts[o.font], 22050)
                    assert np.max(np.abs(y)) > 0.01, (o.name, key)


def test_a_melodic_key_without_a_sample_is_not_offered():
    """TimGM6mb's alto sax has no sample at key 64: the zones say so, so no plan plays it."""
    alto = next(o for o in two_soundfonts().options["TimGM6mb"]["Saxophone"] if o.program == 65)
    assert 64 not in alto.keys and {63, 65} <= set(alto.keys)


# ---- planning: invariants for any seed and class -------------------------------------------

@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), label=st.sampled_from(DEMO_CLASSES))
def test_a_plan_stays_inside_the_instrument_and_the_clip(seed, label):
    library = TWO_SOUNDFONTS[seed % 2]
    options = two_soundfonts().options[library][label]
    perf = soundfonts.plan_performance(np.random.default_rng(seed), label, options,
                                       min_seconds=TINY.min_seconds, max_seconds=TINY.max_seconds)
    assert TINY.min_seconds <= perf.seconds <= TINY.max_seconds
    assert perf.notes and all(0 <= n.onset < perf.seconds for n in perf.notes)
    assert all(1 <= n.velocity <= 127 for n in perf.notes)
    voices = soundfonts.CLASS_VOICES[label]
    option = next(o for o in options if (o.font, o.bank, o.program) ==
                  (perf.soundfont, perf.bank, perf.program))
    assert option.voice in voices and perf.soundfont == library
    assert {n.key for n in perf.notes} <= set(option.keys)
    if perf.is_drum:
        for n in perf.notes:
            assert (perf.soundfont, perf.program, n.key) not in soundfonts.BAD_DRUM_KEYS


@pytest.mark.slow
def test_the_seven_libraries_cover_every_class_without_duplicates():
    """The real libraries (Debian packages fetched, or reused from data/sources): at least six
    sound a class, every demo class is sounded by three or more, the known copies are dropped
    (Merlin's electric pianos are TimGM6mb's, freepats' violin is Merlin's), and no kept voice
    plays only recordings that an earlier library's kept voices hold."""
    catalogue = soundfonts.load_catalogue(ALL_LIBRARIES, drop_duplicates=True, progress=False)
    assert len(catalogue.libraries) >= 6, catalogue.missing
    coverage = catalogue.coverage()
    assert ((coverage > 0).sum(axis=1) >= 3).all(), coverage
    dropped = {voice for _, voice, _ in catalogue.dropped}
    if {"Merlin", "freepats"} <= set(catalogue.libraries):
        assert "Merlin 0:4 E.Piano 1 (Electric_piano)" in dropped
        assert "freepats 0:40 040_Violin (Violin_or_fiddle)" in dropped
    order = list(catalogue.libraries)
    kept = [o for lib in order for options in catalogue.options[lib].values() for o in options]
    for o in kept:
        earlier = set().union(*(k.recordings for k in kept
                                if order.index(k.library) < order.index(o.library)))
        assert not (o.recordings and o.recordings <= earlier), o.name
    if "AVL" in catalogue.libraries:
        assert set(catalogue.options["AVL"]) == {"Bass_drum", "Snare_drum", "Hi-hat",
                                                 "Tambourine", "Cowbell"}
